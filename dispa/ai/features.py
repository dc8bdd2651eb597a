"""One second of an endpoint's counters, reduced to the few numbers the models learn from.

Pure: counters in, a small dict out. Latency comes either as raw samples or as histogram
buckets (cumulative counts by upper bound, as Prometheus exports them); quantiles from
buckets are interpolated linearly inside the bucket, as `histogram_quantile` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EndpointCounters:
    """What one endpoint saw during `interval_seconds` (normally one second)."""

    requests: int = 0
    errors: int = 0
    latency_samples: Sequence[float] = ()
    # Upper bound (seconds, math.inf for the last) -> cumulative count of requests at or below.
    latency_buckets: Mapping[float, int] = field(default_factory=dict)
    active_connections: int = 0
    interval_seconds: float = 1.0


def quantile_of_samples(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of raw samples; NaN when there are none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def quantile_of_buckets(buckets: Mapping[float, int], q: float) -> float:
    """Quantile from cumulative buckets; NaN when empty. The +Inf bucket answers with the
    highest finite bound, since nothing is known above it."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            fraction = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


def extract_features(counters: EndpointCounters) -> dict[str, float]:
    """rate (requests/s), error_ratio, latency_p50 and latency_p99 (seconds), active.

    Latency quantiles are NaN when the interval had no latency observations: there is
    nothing to learn from, and a zero would read as "very fast".
    """
    if counters.interval_seconds <= 0:
        raise ValueError("interval_seconds must be > 0")
    if counters.requests < 0 or counters.errors < 0 or counters.active_connections < 0:
        raise ValueError("counters must not be negative")
    if counters.latency_samples:
        p50 = quantile_of_samples(counters.latency_samples, 0.5)
        p99 = quantile_of_samples(counters.latency_samples, 0.99)
    else:
        p50 = quantile_of_buckets(counters.latency_buckets, 0.5)
        p99 = quantile_of_buckets(counters.latency_buckets, 0.99)
    return {
        "rate": counters.requests / counters.interval_seconds,
        "error_ratio": min(1.0, counters.errors / counters.requests) if counters.requests else 0.0,
        "latency_p50": p50,
        "latency_p99": p99,
        "active": float(counters.active_connections),
    }
