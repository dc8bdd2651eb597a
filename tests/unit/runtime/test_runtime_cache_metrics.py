"""dispa_cache_* on a single gateway's /metrics: from the cache, or from each worker's."""

import msgpack
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dispa.config.schema import CacheSettings
from dispa.edge.edge_cache import EdgeCache
from dispa.observe.metrics import render
from dispa.runtime.cache_metrics import CacheCollector, WorkersCacheCollector, families_as_data


def samples(collector) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = render(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def busy_cache(hits: int, misses: int) -> EdgeCache:
    cache = EdgeCache(CacheSettings(memory=2**20))
    cache.results["hit"] = hits
    cache.results["miss"] = misses
    cache.bytes_served = 10 * hits
    return cache


def test_no_cache_no_families():
    assert samples(CacheCollector(lambda: None)) == {}
    assert families_as_data(None) == []


def test_one_process_exports_the_edges_families():
    found = samples(CacheCollector(lambda: busy_cache(3, 1)))
    assert found[("dispa_cache_responses_total", (("result", "hit"),))] == 3
    assert found[("dispa_cache_responses_total", (("result", "miss"),))] == 1
    assert found[("dispa_cache_hit_ratio", ())] == 0.75
    assert found[("dispa_cache_served_bytes_total", ())] == 30


def test_workers_families_are_the_same_with_a_worker_label():
    """What each worker publishes (through msgpack, as the stats file carries it) comes
    out of the supervisor as that worker's own families, sample for sample."""
    caches = [busy_cache(3, 1), busy_cache(1, 1)]
    published = [
        msgpack.unpackb(
            msgpack.packb({"worker": index, "cache_families": families_as_data(cache)}),
            strict_map_key=False,
        )
        for index, cache in enumerate(caches)
    ]
    published.append({"worker": 2, "cache_families": []})  # a worker with no cache yet
    merged = samples(WorkersCacheCollector(lambda: published))
    for index, cache in enumerate(caches):
        own = samples(CacheCollector(lambda cache=cache: cache))
        for (name, labels), value in own.items():
            labelled = tuple(sorted((*labels, ("worker", str(index)))))
            assert merged.pop((name, labelled)) == value
    assert merged == {}
