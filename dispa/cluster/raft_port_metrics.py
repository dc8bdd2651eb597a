"""Prometheus families of the Raft port: peers dropped, and connections yet to authenticate."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class RaftPortCollector:
    """Reads the store's Raft port counters; yields nothing on a store without a Raft port
    (etcd)."""

    def __init__(self, store) -> None:
        self.store = store

    def describe(self):
        return []

    def collect(self):
        statistics = getattr(self.store, "raft_port_statistics", lambda: None)()
        if statistics is None:
            return
        dropped = CounterMetricFamily(
            "dispa_raft_peer_dropped",
            "Connections the Raft port closed for breaking a limit, by reason: oversized "
            "(length prefix above the limit), bad_message (not under the cluster key), "
            "auth_timeout, unauthenticated_limit.",
            labels=["reason"],
        )
        for reason, count in sorted(statistics["dropped"].items()):
            dropped.add_metric([reason], float(count))
        yield dropped
        pending = GaugeMetricFamily(
            "dispa_raft_unauthenticated_connections",
            "Connections to the Raft port that have not proven the cluster secret yet.",
        )
        pending.add_metric([], float(statistics["unauthenticated"]))
        yield pending
