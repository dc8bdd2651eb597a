"""Runtime state of one upstream endpoint, shared by balancers, health and outlier logic.

An Endpoint outlives config snapshots: when a reload keeps the same upstream address,
its health, outlier history, counters and connection pool carry over.
"""

from __future__ import annotations

from dispa.observe.stats import LATENCY_BUCKETS


class Endpoint:
    __slots__ = (
        "active_requests",
        "address",
        "ewma_latency",
        "healthy",
        "host",
        "key",
        "latency_counts",
        "pool",
        "port",
        "upstream",
        "weight",
        "weight_factor",
    )

    def __init__(self, upstream: str, host: str, port: int, weight: int = 1) -> None:
        self.upstream = upstream
        self.host = host
        self.port = port
        self.weight = weight
        self.address = f"{host}:{port}"
        # Stable bytes identity used by hashing balancers (ring_hash, maglev).
        self.key = self.address.encode()
        # Requests currently in flight to this endpoint (least_request, bounded load).
        self.active_requests = 0
        # Exponentially weighted moving average of response latency, seconds (p2c_ewma).
        self.ewma_latency = 0.0
        # Combined availability as seen by balancing: active health and not ejected.
        self.healthy = True
        # Idle keep-alive connections to this endpoint (set by the upstream runtime).
        self.pool = None
        # Multiplies weight in every balancer; lowered by AI steering for an endpoint that
        # looks anomalous. Balancers read it when built or reweighed, never per pick.
        self.weight_factor = 1.0
        # Responses by latency bucket (observe.stats.LATENCY_BUCKETS, last one +Inf): the
        # AI sampler reads the p50/p99 of each second from the differences.
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)

    def __repr__(self) -> str:
        return f"Endpoint({self.upstream}/{self.address}, weight={self.weight})"
