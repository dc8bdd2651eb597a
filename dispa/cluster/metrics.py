"""Prometheus metrics of a core node's cluster side: Raft role and revisions, quota mode."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily


class ClusterCollector:
    def __init__(self, node) -> None:
        self.node = node

    def describe(self):
        return []

    def collect(self):
        node = self.node
        status = node.local_status()
        leader = GaugeMetricFamily("dispa_cluster_is_leader", "1 on the Raft leader.")
        leader.add_metric([], 1.0 if status["state"] == "leader" else 0.0)
        yield leader
        term = GaugeMetricFamily("dispa_cluster_term", "Raft term as seen by this core.")
        term.add_metric([], float(status["term"] or 0))
        yield term
        revision = GaugeMetricFamily("dispa_cluster_revision", "Latest committed revision.")
        revision.add_metric([], float(status["revision"]))
        yield revision
        applied = GaugeMetricFamily(
            "dispa_cluster_applied_revision", "Config revision this core's data plane serves."
        )
        applied.add_metric([], float(status["applied_revision"]))
        yield applied
        yield from quota_metrics(node.gateway.quota.statistics())


def quota_metrics(quota: dict):
    """The rate-limit families every node that leases quota exports (cores and edges)."""
    fallback = GaugeMetricFamily(
        "dispa_rate_limit_fallback",
        "1 while this node cannot lease quota and enforces its fallback share alone.",
    )
    fallback.add_metric([], 1.0 if quota["mode"] == "fallback" else 0.0)
    yield fallback
    bound = GaugeMetricFamily(
        "dispa_rate_limit_overadmission_bound",
        "Requests per window and key this node may admit beyond the cluster-wide limit: "
        "its one request on credit while leasing, or its share while cut off.",
        labels=["limit"],
    )
    for name, tokens in quota["overadmission_bound"].items():
        bound.add_metric([name], float(tokens))
    yield bound
    leased = GaugeMetricFamily(
        "dispa_rate_limit_leased_tokens", "Tokens leased by this node and not yet spent."
    )
    leased.add_metric([], float(quota.get("leased_tokens", 0)))
    yield leased


def cluster_registry(node) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(node))
    return registry
