"""Human units in config: durations (``250ms``, ``1s``, ``5m``) and sizes (``64KiB``, ``1GiB``).

Both parse to plain numbers (seconds as float, bytes as int) so the rest of Dispa never
sees strings.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_SIZE_BYTES = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "k": 1024,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_duration(value: object) -> float:
    """Seconds from ``"250ms"``, ``"1s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a bare number."""
    # Every message names the bad value, whatever its type (a list, a bool, nan).
    bad = f"'{value}' is not a duration; write it like 250ms, 1s, 5m or 1h"
    if isinstance(value, bool):
        raise ValueError(bad)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(bad)
        seconds = float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
    else:
        raise ValueError(bad)
    # YAML's .nan and .inf are floats too; a timer cannot be armed with them.
    if not math.isfinite(seconds):
        raise ValueError(bad)
    if seconds < 0:
        raise ValueError(f"'{value}': a duration cannot be negative")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from ``"64KiB"``, ``"1MiB"``, ``"1GB"`` or a bare integer."""
    # Every message names the bad value, whatever its type (a float, a list, a bool).
    bad = f"'{value}' is not a size; write it like 8192, 64KiB, 10MiB or 1GiB"
    if isinstance(value, bool):
        raise ValueError(bad)
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(bad)
        size = int(match.group(1)) * _SIZE_BYTES[match.group(2)]
    else:
        raise ValueError(bad)
    if size < 0:
        raise ValueError(f"'{value}': a size cannot be negative")
    return size


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
