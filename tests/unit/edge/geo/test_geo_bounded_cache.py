from __future__ import annotations

import pytest

from dispa.edge.geo import BoundedCache


def test_size_never_exceeds_capacity() -> None:
    cache: BoundedCache[int, int] = BoundedCache(3)
    for key in range(100):
        cache.put(key, key * 2)
        assert len(cache) <= 3
    assert [key for key in range(100) if key in cache] == [97, 98, 99]


def test_least_recently_used_entry_is_evicted_first() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent; "b" goes next
    cache.put("c", 3)
    assert "b" not in cache
    assert cache.get("a") == 1
    assert cache.get("c") == 3


def test_put_on_existing_key_replaces_and_refreshes() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.get("a") == 10
    assert "b" not in cache
    assert len(cache) == 2


def test_default_distinguishes_absent_from_cached_none() -> None:
    missing = object()
    cache: BoundedCache[str, None] = BoundedCache(4)
    cache.put("known", None)
    assert cache.get("known", missing) is None
    assert cache.get("other", missing) is missing
    assert cache.get("other") is None


def test_statistics_count_hits_and_misses() -> None:
    cache: BoundedCache[str, int] = BoundedCache(4)
    cache.put("a", 1)
    cache.get("a")
    cache.get("a")
    cache.get("b")
    assert cache.statistics() == {"size": 1, "capacity": 4, "hits": 2, "misses": 1}
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedCache(capacity)
