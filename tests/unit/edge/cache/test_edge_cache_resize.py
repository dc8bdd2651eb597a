"""CacheStore.resize: new limits on a reload keep what fits and evict the rest in LRU order."""

from pathlib import Path

import pytest

from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.key import primary_key, url_of
from dispa.edge.cache.store import CacheStore

NOW = 1_700_000_000.0


def response(target: str, body: bytes = b"body") -> CachedResponse:
    return CachedResponse.from_response(
        200,
        b"OK",
        [(b"Cache-Control", b"max-age=60")],
        body,
        NOW,
        NOW,
        url_of("https", "shop.example", target),
    )


def key(target: str) -> str:
    return primary_key("GET", "https", "shop.example", target)


def one_size() -> int:
    probe = CacheStore(memory_bytes=10**6)
    probe.store(key("/0"), [], response("/0"))
    return probe.memory_bytes


def filled(count: int, memory: int, **disk) -> CacheStore:
    store = CacheStore(memory_bytes=memory, **disk)
    for index in range(count):
        assert store.store(key(f"/{index}"), [], response(f"/{index}"))
    return store


def bodies(store: CacheStore, count: int) -> list[bytes | None]:
    found = [store.lookup(key(f"/{index}"), []) for index in range(count)]
    return [entry.body if entry is not None else None for entry in found]


def test_growing_keeps_every_entry():
    store = filled(4, memory=4 * one_size())
    store.resize(memory_bytes=10**6, disk_bytes=0, max_entry_bytes=10**6)
    assert bodies(store, 4) == [b"body"] * 4
    stats = store.statistics()
    assert (stats["memory_limit"], stats["evictions"]) == (10**6, 0)


def test_shrinking_memory_evicts_the_least_recently_used():
    size = one_size()
    store = filled(4, memory=4 * size)
    store.lookup(key("/0"), [])  # /0 is now the most recently used
    store.resize(memory_bytes=2 * size, disk_bytes=0, max_entry_bytes=10**6)
    assert bodies(store, 4) == [b"body", None, None, b"body"]
    stats = store.statistics()
    assert stats["memory_bytes"] <= stats["memory_limit"] == 2 * size
    assert (stats["entries"], stats["evictions"]) == (2, 2)


def test_shrinking_memory_to_nothing_empties_it_and_later_stores_are_refused():
    store = filled(3, memory=3 * one_size())
    store.resize(memory_bytes=0, disk_bytes=0, max_entry_bytes=10**6)
    assert len(store) == 0 and store.memory_bytes == 0
    assert store.store(key("/new"), [], response("/new")) is False


def test_shrinking_memory_spills_to_the_disk_tier(tmp_path: Path):
    store = filled(3, memory=3 * one_size(), disk_dir=str(tmp_path), disk_bytes=10**6)
    store.resize(memory_bytes=one_size(), disk_bytes=10**6, max_entry_bytes=10**6)
    stats = store.statistics()
    assert (stats["memory_entries"], stats["disk_entries"], stats["spills"]) == (1, 2, 2)
    assert stats["evictions"] == 0
    assert bodies(store, 3) == [b"body"] * 3  # served from disk (and promoted back)


def test_shrinking_the_disk_tier_drops_its_oldest_files(tmp_path: Path):
    store = filled(4, memory=0, disk_dir=str(tmp_path), disk_bytes=10**6)
    file_size = store.disk_bytes // 4
    store.resize(memory_bytes=0, disk_bytes=2 * file_size, max_entry_bytes=10**6)
    assert bodies(store, 4) == [None, None, b"body", b"body"]
    assert len(list(tmp_path.rglob("*.entry"))) == 2
    assert store.statistics()["disk_bytes"] <= 2 * file_size


def test_a_smaller_max_entry_applies_to_what_is_stored_next():
    store = filled(1, memory=10**6)
    store.resize(memory_bytes=10**6, disk_bytes=0, max_entry_bytes=10)
    assert bodies(store, 1) == [b"body"]  # already stored: kept
    assert store.store(key("/big"), [], response("/big", b"x" * 100)) is False


def test_the_decoded_entries_follow_the_smaller_memory():
    """Entries decoded for fast hits are bounded by a quarter of memory (in body bytes):
    a shrink trims them, and what is served is still what was stored."""
    body = b"x" * 2000  # compresses well: far more bytes decoded than stored
    store = CacheStore(memory_bytes=10**6)
    for index in range(4):
        store.store(key(f"/{index}"), [], response(f"/{index}", body))
    assert [store.lookup(key(f"/{i}"), []).body for i in range(4)] == [body] * 4
    assert store._decoded_bytes == 4 * len(body)  # all four are held decoded
    store.resize(memory_bytes=store.memory_bytes, disk_bytes=0, max_entry_bytes=10**6)
    assert len(store) == 4  # every entry still fits
    assert store._decoded_bytes <= store.memory_limit // 4 < 4 * len(body)
    assert [store.lookup(key(f"/{i}"), []).body for i in range(4)] == [body] * 4


def test_negative_sizes_are_refused():
    store = CacheStore(memory_bytes=10)
    with pytest.raises(ValueError):
        store.resize(memory_bytes=-1, disk_bytes=0, max_entry_bytes=10)
