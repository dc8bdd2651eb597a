"""Prometheus metrics, built at scrape time from the gateway's plain counters.

The data plane only bumps numbers in ``DataPlaneStats``; this collector turns the
snapshots of every worker into metric families when Prometheus asks, so the client
library never sits on the request path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from dispa.observe.stats import LATENCY_BUCKETS

# The classic text format: every Prometheus server and scraper understands it, and it is
# what generate_latest writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BUCKET_LABELS = [floatToGoString(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]


@dataclass
class LatencyTotals:
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BUCKET_LABELS))
    count: int = 0
    sum: float = 0.0


@dataclass
class DataPlaneTotals:
    """The counters of all workers added together."""

    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    latency: dict[str, LatencyTotals] = field(default_factory=dict)
    local_replies: dict[str, int] = field(default_factory=dict)
    endpoint_requests: dict[tuple[str, str], int] = field(default_factory=dict)
    endpoint_failures: dict[tuple[str, str], int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    connections_accepted: int = 0
    connections_active: int = 0
    requests_active: int = 0
    # submitted, rejected, skipped (counters) and outstanding (a gauge), all workers
    filter_executor: dict[str, int] = field(default_factory=dict)


def _add(totals: dict, key, amount) -> None:
    totals[key] = totals.get(key, 0) + amount


def sum_snapshots(snapshots: Iterable[dict]) -> DataPlaneTotals:
    """Add up ``DataPlaneStats.snapshot()`` dicts, one per worker.

    Missing keys count as zero, so a worker that has seen no traffic yet (or an older
    worker during an upgrade) still adds up cleanly.
    """
    totals = DataPlaneTotals()
    for snapshot in snapshots:
        for route, upstream, status_class, count in snapshot.get("requests", ()):
            _add(totals.requests, (route, upstream, status_class), count)
        for route, histogram in snapshot.get("latency", {}).items():
            route_totals = totals.latency.setdefault(route, LatencyTotals())
            for index, count in enumerate(histogram["buckets"][: len(_BUCKET_LABELS)]):
                route_totals.buckets[index] += count
            route_totals.count += histogram["count"]
            route_totals.sum += histogram["sum"]
        for reason, count in snapshot.get("local_replies", {}).items():
            _add(totals.local_replies, reason, count)
        for upstream, endpoint, requests, failures in snapshot.get("endpoint_requests", ()):
            _add(totals.endpoint_requests, (upstream, endpoint), requests)
            _add(totals.endpoint_failures, (upstream, endpoint), failures)
        for upstream, count in snapshot.get("retries", {}).items():
            _add(totals.retries, upstream, count)
        totals.connections_accepted += snapshot.get("connections_accepted", 0)
        totals.connections_active += snapshot.get("connections_active", 0)
        totals.requests_active += snapshot.get("requests_active", 0)
        for key, count in snapshot.get("filter_executor", {}).items():
            _add(totals.filter_executor, key, count)
    return totals


def traffic_families(totals: DataPlaneTotals) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "dispa_requests",
        "Requests answered, by route, upstream and status class.",
        labels=("route", "upstream", "status_class"),
    )
    for labels, count in sorted(totals.requests.items()):
        requests.add_metric(labels, count)
    yield requests

    duration = HistogramMetricFamily(
        "dispa_request_duration_seconds",
        "Time from request head received to response end, by route.",
        labels=("route",),
    )
    for route, latency in sorted(totals.latency.items()):
        # Stats keep one count per bucket; Prometheus buckets count everything at or below
        # their bound, so they are the running sum.
        cumulative = accumulate(latency.buckets)
        duration.add_metric(
            (route,), list(zip(_BUCKET_LABELS, cumulative, strict=True)), latency.sum
        )
    yield duration

    local_replies = CounterMetricFamily(
        "dispa_local_replies",
        "Replies the gateway made itself, by reason.",
        labels=("reason",),
    )
    for reason, count in sorted(totals.local_replies.items()):
        local_replies.add_metric((reason,), count)
    yield local_replies

    upstream_requests = CounterMetricFamily(
        "dispa_upstream_requests",
        "Requests forwarded to an upstream endpoint.",
        labels=("upstream", "endpoint"),
    )
    upstream_failures = CounterMetricFamily(
        "dispa_upstream_failures",
        "Forwarded requests that failed at the endpoint.",
        labels=("upstream", "endpoint"),
    )
    for key, count in sorted(totals.endpoint_requests.items()):
        upstream_requests.add_metric(key, count)
        upstream_failures.add_metric(key, totals.endpoint_failures.get(key, 0))
    yield upstream_requests
    yield upstream_failures

    retries = CounterMetricFamily(
        "dispa_retries", "Retried upstream attempts, by upstream.", labels=("upstream",)
    )
    for upstream, count in sorted(totals.retries.items()):
        retries.add_metric((upstream,), count)
    yield retries

    yield CounterMetricFamily(
        "dispa_connections_accepted",
        "Client connections accepted.",
        value=totals.connections_accepted,
    )
    yield GaugeMetricFamily(
        "dispa_connections_active",
        "Client connections open now.",
        value=totals.connections_active,
    )
    yield GaugeMetricFamily(
        "dispa_requests_active",
        "Requests begun and not yet ended (waiting on a filter included).",
        value=totals.requests_active,
    )
    yield from filter_executor_families(totals.filter_executor)


def filter_executor_families(counts: dict[str, int]) -> Iterator[Metric]:
    jobs = CounterMetricFamily(
        "dispa_filter_executor_jobs",
        "Filter jobs for the executor's threads, by outcome: submitted (queued or run), "
        "rejected (threads and queue full: the request got 503 filter_executor_full), "
        "skipped (the request ended before a thread took the job).",
        labels=("outcome",),
    )
    for outcome in ("submitted", "rejected", "skipped"):
        jobs.add_metric((outcome,), counts.get(outcome, 0))
    yield jobs
    yield GaugeMetricFamily(
        "dispa_filter_executor_outstanding",
        "Filter jobs running or waiting for a thread now.",
        value=counts.get("outstanding", 0),
    )


def endpoint_families(upstreams_document: dict) -> Iterator[Metric]:
    labels = ("upstream", "endpoint")
    healthy = GaugeMetricFamily(
        "dispa_endpoint_healthy",
        "1 if the gateway counts the endpoint healthy, else 0.",
        labels=labels,
    )
    ejected = GaugeMetricFamily(
        "dispa_endpoint_ejected", "1 if outlier detection has ejected the endpoint.", labels=labels
    )
    active_requests = GaugeMetricFamily(
        "dispa_endpoint_active_requests", "Requests in flight to the endpoint.", labels=labels
    )
    idle_connections = GaugeMetricFamily(
        "dispa_pool_idle_connections", "Idle pooled connections to the endpoint.", labels=labels
    )
    pool_size = GaugeMetricFamily(
        "dispa_upstream_endpoints", "Endpoints in the upstream pool.", labels=("upstream",)
    )
    for upstream in upstreams_document.get("upstreams", ()):
        name = upstream["name"]
        endpoints = upstream.get("endpoints", ())
        pool_size.add_metric((name,), len(endpoints))
        for endpoint in endpoints:
            key = (name, endpoint["address"])
            healthy.add_metric(key, 1 if endpoint["healthy"] else 0)
            ejected.add_metric(key, 1 if endpoint["ejected"] else 0)
            active_requests.add_metric(key, endpoint["active_requests"])
            idle_connections.add_metric(key, endpoint["idle_connections"])
    yield from (healthy, ejected, active_requests, idle_connections, pool_size)


def config_revision_family(revision: int | None) -> Metric:
    family = GaugeMetricFamily("dispa_config_revision", "Revision of the config snapshot in force.")
    if revision is not None:
        family.add_metric((), revision)
    return family


class MetricsSource(Protocol):
    """What a scrape reads from a node (every AdminView provides it): the data plane's
    counters, its upstreams and the config revision in force. Declared here so that
    observe depends on no part of the admin API, which depends on it."""

    def stats_snapshots(self) -> list[dict]: ...

    def upstreams_document(self) -> dict: ...

    def config_document(self) -> dict: ...


class DataPlaneCollector(Collector):
    """Reads the gateway through its MetricsSource (its AdminView) on every scrape."""

    def __init__(self, view: MetricsSource) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view
        yield from traffic_families(sum_snapshots(view.stats_snapshots()))
        yield from endpoint_families(view.upstreams_document())
        yield config_revision_family(view.config_document()["revision"])

    def describe(self) -> Iterator[Metric]:
        # The same families without samples: lets the registry check names at register
        # time without reading the gateway.
        yield from traffic_families(DataPlaneTotals())
        yield from endpoint_families({})
        yield config_revision_family(None)


def build_registry(view: MetricsSource) -> CollectorRegistry:
    """A registry of our own, so several gateways (or tests) in one process never collide
    in the global default registry."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DataPlaneCollector(view))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
    return generate_latest(registry)
