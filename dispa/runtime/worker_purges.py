"""Cache purges with ``--workers N``: the supervisor logs them, every worker applies them.

The supervisor serves the admin API but holds no cache. It appends each purge to a log
in the workers' stats directory (``PurgeLog``); each worker reads the log on its publish
tick (every second), applies the purges it has not applied yet and publishes the last
one it applied with what each removed (``PurgeFollower``), so the supervisor can answer
once every worker has it.

A worker that starts, or restarts after a crash, applies the whole log: purging again
costs only a refetch, and its disk tier may still hold what was purged while it was down.
When the log no longer reaches back to the first purge the worker missed (only the last
``KEPT`` are kept), the worker empties its cache instead.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict, deque
from pathlib import Path

import msgpack

log = logging.getLogger("dispa.cache")

PURGE_LOG = "purges.msgpack"
KEPT = 1000
# What each of the last purges removed, as published for the supervisor's answer.
REMEMBERED = 64


class PurgeLog:
    """The supervisor's side: numbered purges, written where the workers read them."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / PURGE_LOG
        self.entries: deque[dict] = deque(maxlen=KEPT)
        self.seq = 0

    def append(self, urls: list[str], tags: list[str]) -> int:
        self.seq += 1
        self.entries.append({"seq": self.seq, "urls": urls, "tags": tags})
        scratch = self.path.with_suffix(".tmp")
        scratch.write_bytes(msgpack.packb(list(self.entries)))
        os.replace(scratch, self.path)  # a worker never reads half a log
        return self.seq


class PurgeFollower:
    """A worker's side: applies what is new in the log to its own cache."""

    def __init__(self, directory: Path, gateway_cache) -> None:
        self.path = directory / PURGE_LOG
        self.gateway_cache = gateway_cache
        self.applied = 0
        self.removed: OrderedDict[int, int] = OrderedDict()
        # The log file as last read: each write is a new file renamed into place, so a
        # new (inode, mtime, size) means new purges, even within one mtime tick.
        self._seen: tuple[int, int, int] | None = None

    def poll(self) -> None:
        try:
            status = self.path.stat()
            version = (status.st_ino, status.st_mtime_ns, status.st_size)
            if version == self._seen:
                return
            entries = msgpack.unpackb(self.path.read_bytes())
        except FileNotFoundError:
            return  # no purge yet
        except (OSError, ValueError, msgpack.UnpackException) as error:
            log.warning("cannot read the purge log %s: %s", self.path, error)
            return
        self._seen = version
        new = [entry for entry in entries if entry["seq"] > self.applied]
        if not new:
            return
        if new[0]["seq"] > self.applied + 1:
            dropped = self.gateway_cache.purge_all()
            log.warning(
                "purges %d to %d are no longer in the log: all %d cached responses dropped",
                self.applied + 1,
                new[0]["seq"] - 1,
                dropped,
            )
        for entry in new:
            removed = self.gateway_cache.purge(entry["urls"], entry["tags"])
            self.removed[entry["seq"]] = removed
            self.applied = entry["seq"]
        while len(self.removed) > REMEMBERED:
            self.removed.popitem(last=False)

    def document(self) -> dict:
        return {"seq": self.applied, "removed": dict(self.removed)}
