"""Prometheus metrics of an edge node: what it serves, whom it follows, how fast config
reaches it, and its rate-limit mode."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily

from dispa.cluster.metrics import quota_metrics

# From the commit on a core to this edge serving it; the goal is 1 s at p99 on a LAN.
PROPAGATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EdgeCollector:
    def __init__(self, node) -> None:
        self.node = node

    def describe(self):
        return []

    def collect(self):
        node = self.node
        applied = GaugeMetricFamily(
            "dispa_edge_applied_revision", "Config revision this edge's data plane serves."
        )
        applied.add_metric([], float(node.applied_revision))
        yield applied
        connected = GaugeMetricFamily(
            "dispa_edge_core_connected", "1 while this edge follows a core's watch stream."
        )
        connected.add_metric([], 1.0 if node.follower.connected_to else 0.0)
        yield connected
        silence = GaugeMetricFamily(
            "dispa_edge_core_silence_seconds", "Seconds since this edge last heard from a core."
        )
        heard = node.follower.last_heard
        silence.add_metric([], time.monotonic() - heard if heard else float("inf"))
        yield silence
        yield from quota_metrics(node.gateway.quota.statistics())
        cache = node.gateway.cache
        if cache is not None:
            yield from cache.metric_families()


def edge_registry(node) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(node))
    propagation = Histogram(
        "dispa_edge_config_propagation_seconds",
        "Time from a config commit on a core to this edge serving it.",
        buckets=PROPAGATION_BUCKETS,
        registry=registry,
    )
    return registry, propagation
