"""CacheStore's memory tier: variants, purges, the LRU byte bound, statistics."""

import pytest

from dispa.edge.cache.entry import CachedResponse, encode_entry
from dispa.edge.cache.key import primary_key, url_of
from dispa.edge.cache.store import CacheStore

NOW = 1_700_000_000.0
GZIP = [(b"Accept-Encoding", b"gzip")]
BROTLI = [(b"Accept-Encoding", b"br")]


def response(
    target: str = "/a", body: bytes = b"body", *headers, response_time: float = NOW
) -> CachedResponse:
    return CachedResponse.from_response(
        200,
        b"OK",
        [(b"Cache-Control", b"max-age=60"), *headers],
        body,
        response_time,
        response_time,
        url_of("https", "shop.example", target),
    )


def key(target: str = "/a") -> str:
    return primary_key("GET", "https", "shop.example", target)


def encoded_size(entry: CachedResponse, request_headers=()) -> int:
    """What an entry takes in memory once stored (its Vary key included)."""
    store = CacheStore(memory_bytes=10**9)
    store.store("k", list(request_headers), entry)
    return store.memory_bytes


# ---------------------------------------------------------------- store and lookup


def test_stored_entry_is_found_and_counted():
    store = CacheStore(memory_bytes=100_000)
    entry = response(body=b"hello")
    assert store.store(key(), [], entry) is True
    found = store.lookup(key(), [])
    assert found is not None
    assert (found.body, found.status, found.url) == (b"hello", 200, "https://shop.example/a")
    assert store.lookup(key("/other"), []) is None
    stats = store.statistics()
    assert (stats["entries"], stats["hits"], stats["memory_hits"], stats["misses"]) == (1, 1, 1, 1)
    assert stats["memory_bytes"] == len(encode_entry(found)) > 0
    assert len(store) == 1


def test_head_requests_find_the_get_entry():
    store = CacheStore(memory_bytes=100_000)
    store.store(key(), [], response(body=b"x"))
    head_key = primary_key("HEAD", "https", "shop.example", "/a")
    assert store.lookup(head_key, []).body == b"x"


def test_storing_the_same_variant_again_replaces_it():
    store = CacheStore(memory_bytes=100_000)
    store.store(key(), [], response(body=b"old"))
    store.store(key(), [], response(body=b"new"))
    assert store.lookup(key(), []).body == b"new"
    stats = store.statistics()
    assert stats["entries"] == 1
    assert stats["memory_bytes"] == encoded_size(response(body=b"new"))


# ---------------------------------------------------------------- Vary


def test_vary_keeps_one_variant_per_request_header_value():
    store = CacheStore(memory_bytes=100_000)
    vary = (b"Vary", b"Accept-Encoding")
    store.store(key(), GZIP, response("/a", b"gzipped", vary))
    store.store(key(), BROTLI, response("/a", b"brotli", vary))
    assert store.lookup(key(), [(b"accept-encoding", b"gzip")]).body == b"gzipped"
    assert store.lookup(key(), BROTLI).body == b"brotli"
    assert store.lookup(key(), []) is None
    assert store.lookup(key(), [(b"Accept-Encoding", b"zstd")]) is None
    assert store.statistics()["entries"] == 2


def test_the_store_sets_the_vary_key():
    store = CacheStore(memory_bytes=100_000)
    store.store(key(), GZIP, response("/a", b"x", (b"Vary", b"Accept-Encoding")))
    assert store.lookup(key(), GZIP).vary_key != b""


def test_vary_star_is_refused():
    store = CacheStore(memory_bytes=100_000)
    assert store.store(key(), [], response("/a", b"x", (b"Vary", b"*"))) is False
    assert store.lookup(key(), []) is None
    assert store.statistics()["rejected"] == 1


def test_the_most_recent_matching_variant_wins():
    store = CacheStore(memory_bytes=100_000)
    # The origin changed its Vary list: both variants match a gzip request.
    store.store(
        key(), GZIP, response("/a", b"newer", (b"Vary", b"Accept-Encoding"), response_time=NOW + 5)
    )
    store.store(key(), GZIP, response("/a", b"older", response_time=NOW))
    assert store.lookup(key(), GZIP).body == b"newer"
    assert store.lookup(key(), BROTLI).body == b"older"


# ---------------------------------------------------------------- removal


def test_remove_drops_every_variant_of_a_key():
    store = CacheStore(memory_bytes=100_000)
    vary = (b"Vary", b"Accept-Encoding")
    store.store(key(), GZIP, response("/a", b"1", vary))
    store.store(key(), BROTLI, response("/a", b"2", vary))
    store.store(key("/b"), [], response("/b"))
    assert store.remove(key()) == 2
    assert store.remove(key()) == 0
    assert store.lookup(key(), GZIP) is None
    assert store.lookup(key("/b"), []) is not None
    assert store.statistics()["memory_bytes"] == encoded_size(response("/b"))


def test_purge_url_drops_all_variants_and_normalizes_the_url():
    store = CacheStore(memory_bytes=100_000)
    vary = (b"Vary", b"Accept-Encoding")
    store.store(key(), GZIP, response("/a", b"1", vary))
    store.store(key(), BROTLI, response("/a", b"2", vary))
    store.store(key("/a?page=2"), [], response("/a?page=2"))
    assert store.purge_url("HTTPS://Shop.Example:443/a") == 2
    assert store.lookup(key(), GZIP) is None
    assert store.lookup(key("/a?page=2"), []) is not None
    assert store.purge_url("https://shop.example/nothing") == 0


def test_purge_tag_drops_every_entry_with_the_tag():
    store = CacheStore(memory_bytes=100_000)
    store.store(key("/p1"), [], response("/p1", b"1", (b"Cache-Tag", b"product-1, catalog")))
    store.store(key("/p2"), [], response("/p2", b"2", (b"Surrogate-Key", b"product-2 catalog")))
    store.store(key("/home"), [], response("/home", b"3"))
    assert store.purge_tag("product-1") == 1
    assert store.lookup(key("/p1"), []) is None
    assert store.purge_tag("catalog") == 1
    assert store.lookup(key("/p2"), []) is None
    assert store.lookup(key("/home"), []) is not None
    assert store.purge_tag("catalog") == 0


# ---------------------------------------------------------------- size limits


def test_memory_tier_evicts_least_recently_used_entries_to_stay_in_bounds():
    one = encoded_size(response("/0"))
    store = CacheStore(memory_bytes=3 * one)
    for index in range(3):
        store.store(key(f"/{index}"), [], response(f"/{index}"))
    assert store.lookup(key("/0"), []) is not None  # /0 is now the most recently used
    store.store(key("/3"), [], response("/3"))
    assert store.lookup(key("/1"), []) is None  # the least recently used went
    assert all(store.lookup(key(f"/{index}"), []) for index in (0, 2, 3))
    stats = store.statistics()
    assert stats["evictions"] == 1
    assert stats["memory_bytes"] <= stats["memory_limit"]
    assert stats["memory_entries"] == stats["entries"] == 3


def test_one_big_entry_can_push_out_several_small_ones():
    small = encoded_size(response("/0", b"s"))
    store = CacheStore(memory_bytes=4 * small)
    for index in range(4):
        store.store(key(f"/{index}"), [], response(f"/{index}", b"s"))
    big = response("/big", bytes(range(256)) * 2)
    assert encoded_size(big) > 2 * small
    assert store.store(key("/big"), [], big)
    assert store.lookup(key("/big"), []).body == big.body
    assert store.statistics()["memory_bytes"] <= 4 * small
    assert store.statistics()["evictions"] >= 3


def test_entries_over_max_entry_bytes_are_not_stored():
    store = CacheStore(memory_bytes=10**6, max_entry_bytes=1000)
    assert store.store(key(), [], response("/a", b"x" * 2000)) is False
    assert store.store(key("/b"), [], response("/b", b"x" * 100)) is True
    assert store.statistics()["rejected"] == 1
    assert store.statistics()["entries"] == 1


def test_entry_bigger_than_memory_is_refused_without_a_disk_tier():
    store = CacheStore(memory_bytes=10)
    assert store.store(key(), [], response()) is False
    assert store.statistics()["entries"] == 0
    assert store.statistics()["memory_bytes"] == 0


def test_a_disk_directory_without_disk_bytes_is_no_disk_tier(tmp_path):
    store = CacheStore(memory_bytes=10, disk_dir=str(tmp_path), disk_bytes=0)
    assert store.store(key(), [], response()) is False
    assert list(tmp_path.iterdir()) == []


def test_negative_sizes_are_refused():
    with pytest.raises(ValueError):
        CacheStore(memory_bytes=-1)
    with pytest.raises(ValueError):
        CacheStore(memory_bytes=10, max_entry_bytes=-5)


def test_a_damaged_memory_entry_is_dropped_not_served():
    store = CacheStore(memory_bytes=100_000)
    store.store(key(), [], response())
    [slot_id] = store._memory  # simulate damage: tests reach inside on purpose
    store._memory[slot_id] = b"\xc1" * len(store._memory[slot_id])  # same size, not msgpack
    assert store.lookup(key(), []) is None
    stats = store.statistics()
    assert (stats["corrupt"], stats["entries"]) == (1, 0)
    assert stats["memory_bytes"] == 0
