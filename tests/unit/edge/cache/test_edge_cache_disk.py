"""CacheStore's disk tier: spill, promotion, bounds, restart, damaged files."""

import os
import tempfile
from pathlib import Path

import pytest

from dispa.edge.cache import disk_files as disk_files_module
from dispa.edge.cache.disk_files import DiskFiles
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.key import primary_key, url_of, variant_id
from dispa.edge.cache.store import CacheStore

NOW = 1_700_000_000.0


def response(target: str, body: bytes = b"body", *headers) -> CachedResponse:
    return CachedResponse.from_response(
        200,
        b"OK",
        [(b"Cache-Control", b"max-age=60"), *headers],
        body,
        NOW,
        NOW,
        url_of("https", "shop.example", target),
    )


def key(target: str) -> str:
    return primary_key("GET", "https", "shop.example", target)


def entry_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.entry"))


def one_entry_store(directory: Path, disk_entries: int = 100) -> tuple[CacheStore, int]:
    """A store whose memory holds exactly one of this file's small entries."""
    probe = CacheStore(memory_bytes=10**6)
    probe.store(key("/0"), [], response("/0"))
    size = probe.memory_bytes
    with tempfile.TemporaryDirectory() as elsewhere:
        disk = CacheStore(memory_bytes=0, disk_dir=elsewhere, disk_bytes=10**6)
        disk.store(key("/0"), [], response("/0"))
        file_size = disk.disk_bytes
    store = CacheStore(size, str(directory), disk_bytes=disk_entries * file_size)
    return store, file_size


def test_an_entry_evicted_from_memory_moves_to_disk(tmp_path):
    store, file_size = one_entry_store(tmp_path)
    store.store(key("/0"), [], response("/0", b"zero"))
    assert entry_files(tmp_path) == []  # nothing written while memory has room
    store.store(key("/1"), [], response("/1", b"one!"))
    [path] = entry_files(tmp_path)
    # Laid out by hash: <dir>/<first two hex digits>/<sha-256>.entry
    assert path.parent.parent == tmp_path
    assert path.stem.startswith(path.parent.name) and len(path.stem) == 64
    stats = store.statistics()
    assert (stats["memory_entries"], stats["disk_entries"], stats["spills"]) == (1, 1, 1)
    assert stats["disk_bytes"] == path.stat().st_size == file_size
    assert stats["evictions"] == 0


def test_a_disk_hit_is_promoted_back_to_memory(tmp_path):
    store, _ = one_entry_store(tmp_path)
    store.store(key("/0"), [], response("/0", b"zero"))
    store.store(key("/1"), [], response("/1", b"one!"))
    assert store.lookup(key("/0"), []).body == b"zero"
    stats = store.statistics()
    assert (stats["disk_hits"], stats["promotions"]) == (1, 1)
    # /0 came back to memory and pushed /1 out to disk: still one of each.
    assert (stats["memory_entries"], stats["disk_entries"]) == (1, 1)
    assert store.lookup(key("/1"), []).body == b"one!"
    assert len(entry_files(tmp_path)) == 1


def test_the_disk_tier_is_bounded_and_drops_its_oldest_entries(tmp_path):
    store, file_size = one_entry_store(tmp_path, disk_entries=2)
    for index in range(5):
        store.store(key(f"/{index}"), [], response(f"/{index}", b"%04d" % index))
    stats = store.statistics()
    assert stats["disk_bytes"] <= 2 * file_size
    assert (stats["memory_entries"], stats["disk_entries"], stats["evictions"]) == (1, 2, 2)
    assert len(entry_files(tmp_path)) == 2
    assert store.lookup(key("/0"), []) is None
    assert store.lookup(key("/1"), []) is None
    assert store.lookup(key("/2"), []).body == b"0002"


def test_entries_survive_a_restart(tmp_path):
    store, _ = one_entry_store(tmp_path)
    vary = (b"Vary", b"Accept-Encoding")
    store.store(key("/0"), [(b"Accept-Encoding", b"gzip")], response("/0", b"zero", vary))
    store.store(key("/1"), [], response("/1", b"one!", (b"Cache-Tag", b"t1")))
    store.store(key("/2"), [], response("/2", b"two!"))  # stays in memory: lost on restart
    restarted = CacheStore(store.memory_limit, str(tmp_path), store.disk_limit)
    stats = restarted.statistics()
    assert (stats["entries"], stats["disk_entries"], stats["memory_entries"]) == (2, 2, 0)
    assert stats["disk_bytes"] == store.disk_bytes
    assert restarted.lookup(key("/0"), []) is None  # the Vary index came back too
    assert restarted.lookup(key("/0"), [(b"accept-encoding", b"gzip")]).body == b"zero"
    assert restarted.purge_tag("t1") == 1
    assert restarted.purge_url("https://shop.example/0") == 1
    assert entry_files(tmp_path) == []


def test_restart_orders_the_disk_lru_by_file_time(tmp_path):
    store, file_size = one_entry_store(tmp_path, disk_entries=3)
    for index in range(4):
        store.store(key(f"/{index}"), [], response(f"/{index}"))
    # /0, /1 and /2 are on disk. Date their files so /1 is the newest and /0 the oldest,
    # whatever the resolution of the file system's clock.
    for target, when in (("/0", 1000), ("/1", 3000), ("/2", 2000)):
        path = DiskFiles(str(tmp_path)).path(variant_id(key(target), b""))
        os.utime(path, (NOW + when, NOW + when))
    # Restarted with room for one entry less: the oldest file goes.
    smaller = CacheStore(0, str(tmp_path), disk_bytes=2 * file_size)
    assert smaller.statistics()["evictions"] == 1
    assert smaller.lookup(key("/0"), []) is None
    assert smaller.lookup(key("/1"), []) is not None
    assert smaller.lookup(key("/2"), []) is not None
    assert len(entry_files(tmp_path)) == 2


def test_damaged_files_are_deleted_at_start(tmp_path):
    store, _ = one_entry_store(tmp_path)
    store.store(key("/0"), [], response("/0", b"zero" * 300))
    store.store(key("/1"), [], response("/1"))
    [good] = entry_files(tmp_path)
    truncated = good.parent / ("ab" * 32 + ".entry")
    truncated.write_bytes(good.read_bytes()[:-20])
    garbage = tmp_path / "cd" / ("cd" * 32 + ".entry")
    garbage.parent.mkdir()
    garbage.write_bytes(b"not an entry")
    misplaced = tmp_path / "cd" / ("ef" * 32 + ".entry")
    misplaced.write_bytes(good.read_bytes())  # valid content under the wrong name
    leftover = good.parent / "tmpx1y2.tmp"
    leftover.write_bytes(b"half a write")
    unrelated = tmp_path / "README"
    unrelated.write_text("not ours")
    restarted = CacheStore(store.memory_limit, str(tmp_path), store.disk_limit)
    assert entry_files(tmp_path) == [good]
    assert not leftover.exists()
    assert unrelated.exists()  # files the cache did not write are left alone
    stats = restarted.statistics()
    assert (stats["entries"], stats["corrupt"]) == (1, 3)
    assert restarted.lookup(key("/0"), []).body == b"zero" * 300


def test_a_file_damaged_after_start_is_dropped_on_lookup(tmp_path):
    store, _ = one_entry_store(tmp_path)
    store.store(key("/0"), [], response("/0"))
    store.store(key("/1"), [], response("/1"))
    [path] = entry_files(tmp_path)
    path.write_bytes(b"\x00" * 10)
    assert store.lookup(key("/0"), []) is None
    assert not path.exists()
    stats = store.statistics()
    assert (stats["corrupt"], stats["entries"], stats["disk_bytes"]) == (1, 1, 0)


def test_a_file_deleted_behind_the_stores_back_is_a_miss(tmp_path):
    store, _ = one_entry_store(tmp_path)
    store.store(key("/0"), [], response("/0"))
    store.store(key("/1"), [], response("/1"))
    [path] = entry_files(tmp_path)
    path.unlink()
    assert store.lookup(key("/0"), []) is None
    assert store.statistics()["disk_entries"] == 0
    assert store.remove(key("/0")) == 0


def test_an_entry_too_big_for_memory_is_served_from_disk(tmp_path):
    store = CacheStore(memory_bytes=100, disk_dir=str(tmp_path), disk_bytes=10**6)
    body = os.urandom(5000)
    assert store.store(key("/big"), [], response("/big", body))
    assert store.statistics()["disk_entries"] == 1
    for _ in range(2):
        assert store.lookup(key("/big"), []).body == body
    stats = store.statistics()
    assert (stats["disk_hits"], stats["promotions"], stats["memory_entries"]) == (2, 0, 0)


def test_an_entry_too_big_for_both_tiers_is_refused(tmp_path):
    store = CacheStore(memory_bytes=100, disk_dir=str(tmp_path), disk_bytes=1000)
    assert store.store(key("/big"), [], response("/big", os.urandom(5000))) is False
    assert store.statistics()["rejected"] == 1
    assert entry_files(tmp_path) == []


def test_replacing_or_removing_an_entry_deletes_its_file(tmp_path):
    store, _ = one_entry_store(tmp_path)
    store.store(key("/0"), [], response("/0", b"old!"))
    store.store(key("/1"), [], response("/1"))
    assert len(entry_files(tmp_path)) == 1
    store.store(key("/0"), [], response("/0", b"new!"))  # /0 was on disk
    assert store.lookup(key("/0"), []).body == b"new!"
    assert store.remove(key("/0")) + store.remove(key("/1")) == 2
    assert entry_files(tmp_path) == []
    assert store.statistics()["disk_bytes"] == store.statistics()["memory_bytes"] == 0


def test_writes_leave_no_temporary_files(tmp_path):
    store, _ = one_entry_store(tmp_path)
    for index in range(10):
        store.store(key(f"/{index}"), [], response(f"/{index}"))
    assert list(tmp_path.rglob("*.tmp")) == []
    assert len(entry_files(tmp_path)) == 9


def test_a_failing_disk_evicts_instead_of_raising(tmp_path, monkeypatch, caplog):
    store, _ = one_entry_store(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(disk_files_module, "write_private_file", disk_full)
    store.store(key("/0"), [], response("/0"))
    assert store.store(key("/1"), [], response("/1")) is True
    stats = store.statistics()
    assert (stats["entries"], stats["evictions"], stats["disk_entries"]) == (1, 1, 0)
    assert "No space left" in caplog.text


def test_a_failed_write_removes_its_temporary_file(tmp_path, monkeypatch):
    store, _ = one_entry_store(tmp_path)

    def failing_replace(source, destination):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(disk_files_module.os, "replace", failing_replace)
    store.store(key("/0"), [], response("/0"))
    store.store(key("/1"), [], response("/1"))
    assert store.statistics()["evictions"] == 1
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


@pytest.mark.parametrize("leading", ["", "/"])
def test_the_disk_directory_is_created(tmp_path, leading):
    directory = tmp_path / "cache" / "edge"
    CacheStore(1000, str(directory) + leading, disk_bytes=1000)
    assert directory.is_dir()


def test_clear_empties_both_tiers(tmp_path):
    store, _ = one_entry_store(tmp_path)
    for index in range(3):
        store.store(key(f"/{index}"), [], response(f"/{index}"))
    assert store.clear() == 3
    assert entry_files(tmp_path) == []
    stats = store.statistics()
    assert (stats["entries"], stats["memory_bytes"], stats["disk_bytes"]) == (0, 0, 0)
    assert store.lookup(key("/2"), []) is None
    assert store.clear() == 0
