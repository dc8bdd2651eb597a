"""File names in a config: a relative one names a file beside the config file.

Every field that names a file or folder (certificates, keys, CAs, data and cache folders,
the access log, the geo database, discovery files ...) has the type ``FilePath``. When a
config is read from a file, the loader (load.py) passes that file's folder in the
validation context, and a relative path is joined to it, so ``dispa edge -c
/etc/dispa/edge.yaml`` finds ``geo.database: GeoLite2-City.mmdb`` in /etc/dispa whatever
folder it was started from, as nginx and HAProxy configs do with their ``include`` files.

A config that did not come from a file has no folder:

- sent to a core's admin API (``dispa apply``, ``PUT /api/v1/config``), a relative path is
  refused: the text was written on one machine and the files are read on every node,
  each started from its own working directory;
- built in code, or replayed from the cluster's history or an edge's persisted copy, a
  path stays as written (relative to the node's working directory, as before), so a
  stored config never turns invalid.

Absolute paths are never touched; ``~`` is not expanded (it would be a folder named
``~``). The folder is the one the config file was named by, made absolute; a config file
that is a symbolic link finds its files beside the link, not beside its target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

# The validation context key: a folder to resolve against, or REFUSE.
FOLDER = "config_folder"
REFUSE = "refuse relative paths"
STANDARD_OUTPUT = "-"  # the access log's name for standard output, not a file


# The validation context of a config sent as text to the admin API.
TEXT_CONTEXT = {FOLDER: REFUSE}


def file_context(config_path: str | Path) -> dict:
    """The validation context of a config read from ``config_path``."""
    # abspath: the working directory (which getcwd gives without symbolic links) joined
    # to the path given, with its "." and ".." segments removed so messages read well.
    return {FOLDER: os.path.dirname(os.path.abspath(config_path))}


def resolve_file_path(value: str, info: ValidationInfo) -> str:
    if value == STANDARD_OUTPUT or os.path.isabs(value):
        return value
    folder = (info.context or {}).get(FOLDER)
    if folder is None:
        return value
    if folder == REFUSE:
        raise ValueError(
            f"'{value}' is a relative path, and a config sent to the admin API has no folder "
            "to find it in: write the absolute path of the file on the nodes"
        )
    return os.path.join(folder, value)


FilePath = Annotated[str, AfterValidator(resolve_file_path)]
