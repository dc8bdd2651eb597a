import sys

from dispa.cli import main

sys.exit(main())
