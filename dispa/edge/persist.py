"""The edge's last applied config on disk, so it can serve after a restart with no core.

One file, written whole and atomically (temporary file, fsync, rename, fsync of the
directory): a crash leaves the old snapshot or the new one, never half of either.
"""

from __future__ import annotations

import logging
import os

import msgpack
import zstandard

log = logging.getLogger("dispa.edge")

SNAPSHOT_FILE = "config-snapshot.msgpack.zst"
FORMAT = 1


def save_snapshot(data_dir: str, snapshot: dict) -> None:
    """``snapshot``: {"revision", "config", "purge_seq", "committed_at"}."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, SNAPSHOT_FILE)
    temporary = path + ".tmp"
    packed = msgpack.packb({"format": FORMAT, **snapshot}, use_bin_type=True)
    with open(temporary, "wb") as handle:
        handle.write(zstandard.ZstdCompressor(level=3).compress(packed))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_snapshot(data_dir: str) -> dict | None:
    """The persisted snapshot, or None if there is none or it cannot be read (logged)."""
    path = os.path.join(data_dir, SNAPSHOT_FILE)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        log.error("cannot read the persisted config %s: %s", path, error.strerror or error)
        return None
    try:
        snapshot = msgpack.unpackb(
            zstandard.ZstdDecompressor().decompress(raw), raw=False, strict_map_key=False
        )
    except (zstandard.ZstdError, ValueError, msgpack.ExtraData) as error:
        log.error("the persisted config %s is damaged (%s): ignoring it", path, error)
        return None
    if not isinstance(snapshot, dict) or snapshot.get("format") != FORMAT:
        log.error("the persisted config %s has an unknown format: ignoring it", path)
        return None
    if not isinstance(snapshot.get("config"), dict):
        log.error("the persisted config %s holds no config: ignoring it", path)
        return None
    return snapshot
