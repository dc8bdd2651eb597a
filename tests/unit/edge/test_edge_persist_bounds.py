"""A damaged or hostile persisted edge config is ignored (logged), within bounds: never a
decompression that allocates what a corrupted header declares, never a config past the
config bounds handed on to validation."""

from __future__ import annotations

import logging
import tracemalloc

import msgpack
import zstandard

from dispa.edge.persist import FORMAT, SNAPSHOT_FILE, load_snapshot, save_snapshot


def test_a_small_file_declaring_a_huge_content_is_ignored_without_allocating_it(
    tmp_path, caplog
) -> None:
    packed = msgpack.packb({"format": FORMAT, "config": {}, "pad": b"\0" * (300 * 2**20)})
    (tmp_path / SNAPSHOT_FILE).write_bytes(zstandard.ZstdCompressor(level=3).compress(packed))
    del packed
    tracemalloc.start()
    try:
        with caplog.at_level(logging.ERROR, "dispa.edge"):
            assert load_snapshot(str(tmp_path)) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB allocated to read it"
    assert "unpacks to more than" in caplog.text


def test_a_persisted_config_past_the_config_bounds_is_ignored(tmp_path, caplog) -> None:
    deep: list = []
    inner = deep
    for _ in range(900):
        inner.append([])
        inner = inner[0]
    save_snapshot(str(tmp_path), {"revision": 3, "config": {"routes": deep}, "purge_seq": 1})
    with caplog.at_level(logging.ERROR, "dispa.edge"):
        assert load_snapshot(str(tmp_path)) is None
    assert "nested more than" in caplog.text


def test_a_good_snapshot_still_loads(tmp_path) -> None:
    save_snapshot(str(tmp_path), {"revision": 3, "config": {"routes": []}, "purge_seq": 1})
    assert load_snapshot(str(tmp_path))["config"] == {"routes": []}
