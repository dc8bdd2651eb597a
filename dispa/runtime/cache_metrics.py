"""The cache's Prometheus families on a single gateway's /metrics (``dispa_cache_*``).

In one process they come straight from the cache (the same families an edge exports).
With ``--workers N`` each worker has a cache of its own: it publishes its families as
plain data with its other counters, and the supervisor exports them with a ``worker``
label, so that a ratio stays a ratio (``sum by`` what you need in PromQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import Metric


class CacheCollector:
    """This process's cache, when it has one (no route caches: no families)."""

    def __init__(self, current_cache: Callable[[], object | None]) -> None:
        self.current_cache = current_cache

    def describe(self):
        return []

    def collect(self) -> Iterator[Metric]:
        cache = self.current_cache()
        if cache is not None:
            yield from cache.metric_families()


def families_as_data(cache) -> list[dict]:
    """A worker's cache families, for its published stats (msgpack-able)."""
    if cache is None:
        return []
    return [
        {
            "name": family.name,
            "type": family.type,
            "documentation": family.documentation,
            "samples": [
                [sample.name, dict(sample.labels), sample.value] for sample in family.samples
            ],
        }
        for family in cache.metric_families()
    ]


class WorkersCacheCollector:
    """The supervisor's view: each worker's published families, labelled by worker."""

    def __init__(self, published: Callable[[], list[dict]]) -> None:
        self.published = published

    def describe(self):
        return []

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for document in self.published():
            worker = str(document.get("worker", "?"))
            for data in document.get("cache_families") or ():
                family = merged.get(data["name"])
                if family is None:
                    family = Metric(data["name"], data["documentation"], data["type"])
                    merged[data["name"]] = family
                for name, labels, value in data["samples"]:
                    family.add_sample(name, {**labels, "worker": worker}, value)
        yield from merged.values()
