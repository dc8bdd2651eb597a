"""The edge's last applied config on disk, so it can serve after a restart with no core.

One file, written whole and atomically (temporary file, fsync, rename, fsync of the
directory): a crash leaves the old snapshot or the new one, never half of either. It
holds the whole shared config (upstream credentials, filter secrets): 0600 in a 0700
folder, whatever the umask.
"""

from __future__ import annotations

import logging
import os

import msgpack
import zstandard

from dispa.cluster.watch_protocol import MAX_FRAME
from dispa.config.bounds import bound_problems
from dispa.private_files import make_private_dir, write_private_file

log = logging.getLogger("dispa.edge")

SNAPSHOT_FILE = "config-snapshot.msgpack.zst"
FORMAT = 1
# What is persisted came from the watch stream, in frames of at most MAX_FRAME bytes; twice
# that leaves room for a config grown by deltas, and bounds what a damaged file can cost.
MAX_UNPACKED_BYTES = 2 * MAX_FRAME


def save_snapshot(data_dir: str, snapshot: dict) -> None:
    """``snapshot``: {"revision", "config", "purge_seq", "committed_at"}."""
    make_private_dir(data_dir)
    packed = msgpack.packb({"format": FORMAT, **snapshot}, use_bin_type=True)
    write_private_file(
        os.path.join(data_dir, SNAPSHOT_FILE), zstandard.ZstdCompressor(level=3).compress(packed)
    )


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
        # zstandard allocates what a frame declares, whatever max_output_size says.
        if zstandard.frame_content_size(raw) > MAX_UNPACKED_BYTES:
            raise ValueError(f"it unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        snapshot = msgpack.unpackb(
            zstandard.ZstdDecompressor().decompress(raw, max_output_size=MAX_UNPACKED_BYTES),
            raw=False,
            strict_map_key=False,
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
    problems = bound_problems(snapshot["config"])  # before validation recurses into it
    if problems:
        log.error("the persisted config %s is past the bounds (%s): ignoring it", path, problems[0])
        return None
    return snapshot
