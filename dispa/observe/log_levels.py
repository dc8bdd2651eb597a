"""``--log-level``: how much Dispa logs, and whether the libraries it uses log too.

``debug`` means Dispa's own debug lines. The libraries underneath (hpack, h2, asyncio,
aiohttp, pysyncobj, river, urllib3 ...) stay at warning unless the operator asks for them
with ``debug:all`` (or ``info:all``): hpack alone writes a line per header field it
decodes, which drowned everything else in a debug log.
"""

from __future__ import annotations

import logging
import sys
from typing import NamedTuple

LEVELS = ("debug", "info", "warning", "error")
ALL_SUFFIX = ":all"
# Loggers at or under this name are Dispa's own; every other one is a library's.
OWN_LOGGER = "dispa"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The floor for libraries' loggers unless ``:all`` is given.
LIBRARY_LEVEL = logging.WARNING


class LogLevel(NamedTuple):
    name: str  # one of LEVELS
    everything: bool  # True with ":all": libraries' loggers follow the same level

    def __str__(self) -> str:
        """The command-line form, as a worker process is handed it."""
        return self.name + (ALL_SUFFIX if self.everything else "")

    @property
    def number(self) -> int:
        return logging.getLevelName(self.name.upper())


def parse_log_level(text: str) -> LogLevel:
    """``debug``, ``info:all`` ... (any case); ValueError naming the valid forms."""
    name, colon, scope = text.strip().lower().partition(":")
    if name not in LEVELS or (colon and scope != "all"):
        raise ValueError(
            f"'{text}' is not a log level; use {', '.join(LEVELS[:-1])} or {LEVELS[-1]}, "
            f"optionally followed by '{ALL_SUFFIX}' to include the libraries' own logs "
            f"(e.g. debug{ALL_SUFFIX})"
        )
    return LogLevel(name, bool(colon))


_configured = LogLevel("info", False)


def configure_logging(level: LogLevel) -> None:
    """Log to stderr: Dispa's loggers at ``level``, the others at warning unless
    ``level.everything`` (and never below ``level``)."""
    global _configured
    _configured = level
    library = level.number if level.everything else max(level.number, LIBRARY_LEVEL)
    # The root level is what every library logger inherits (none sets its own level).
    logging.basicConfig(level=library, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger().setLevel(library)
    logging.getLogger(OWN_LOGGER).setLevel(level.number)


def configured_log_level() -> LogLevel:
    """What ``configure_logging`` last set up: handed on to worker processes."""
    return _configured
