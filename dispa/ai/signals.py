"""From two readings of the data plane's counters to one sample of features.

The data plane only increments counters (requests and errors per endpoint and route,
latency counts by bucket, requests in flight). Once per interval the sampler reads them
(``sampler.py``); everything here is pure: readings in, features out, so it is tested by
feeding numbers.

A sample holds the features of every endpoint, and of every upstream, region (endpoints
grouped by their declared region) and route, as `features.extract_features` computes
them: rate, error_ratio, latency_p50, latency_p99, active.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dispa.ai.features import EndpointCounters, extract_features
from dispa.observe.stats import LATENCY_BUCKETS

BUCKET_BOUNDS = (*LATENCY_BUCKETS, math.inf)


@dataclass(frozen=True)
class Counts:
    """Monotonic counters of one thing (endpoint, route) at one moment, plus a gauge."""

    requests: int = 0
    errors: int = 0
    latency: tuple[int, ...] = ()  # per bucket of BUCKET_BOUNDS, not cumulative
    active: int = 0  # a gauge: requests in flight now


@dataclass(frozen=True)
class Reading:
    """Everything the sampler read at time ``t`` (wall clock, seconds)."""

    t: float
    endpoints: Mapping[tuple[str, str], Counts]  # (upstream, address)
    routes: Mapping[str, Counts] = field(default_factory=dict)
    regions: Mapping[tuple[str, str], str] = field(default_factory=dict)  # endpoint -> region


@dataclass(frozen=True)
class Sample:
    """Features of one interval, for the learner."""

    t: float
    interval: float
    endpoints: dict[tuple[str, str], dict[str, float]]
    upstreams: dict[str, dict[str, float]]
    regions: dict[str, dict[str, float]]
    routes: dict[str, dict[str, float]]


def delta(previous: Counts | None, current: Counts) -> Counts:
    """What happened between two readings. A counter that went backwards was reset (the
    endpoint was rebuilt): then the current value is all that is known of the interval."""
    if previous is None:
        return Counts(0, 0, tuple(0 for _ in current.latency), current.active)
    if current.requests < previous.requests or len(current.latency) != len(previous.latency):
        return current
    pairs = zip(current.latency, previous.latency, strict=True)
    latency = tuple(max(0, now - before) for now, before in pairs)
    return Counts(
        current.requests - previous.requests,
        max(0, current.errors - previous.errors),
        latency,
        current.active,
    )


def cumulative_buckets(latency: Sequence[int]) -> dict[float, int]:
    """Per-bucket counts -> {upper bound: count at or below}, as features expects."""
    total = 0
    cumulative = {}
    for bound, count in zip(BUCKET_BOUNDS, latency, strict=False):
        total += count
        cumulative[bound] = total
    return cumulative


def combine(parts: Iterable[Counts]) -> Counts:
    """Counts of a group (an upstream, a region): sums, bucket by bucket."""
    requests = errors = active = 0
    latency: list[int] = []
    for part in parts:
        requests += part.requests
        errors += part.errors
        active += part.active
        if len(latency) < len(part.latency):
            latency.extend([0] * (len(part.latency) - len(latency)))
        for index, count in enumerate(part.latency):
            latency[index] += count
    return Counts(requests, errors, tuple(latency), active)


def features_of(counts: Counts, interval: float) -> dict[str, float]:
    return extract_features(
        EndpointCounters(
            requests=counts.requests,
            # Errors are counted per try, requests per answer: a retried failure can make
            # more errors than requests in an interval.
            errors=min(counts.errors, counts.requests),
            latency_buckets=cumulative_buckets(counts.latency),
            active_connections=counts.active,
            interval_seconds=interval,
        )
    )


def build_sample(previous: Reading | None, current: Reading) -> Sample | None:
    """The features of the interval between two readings; None for the first reading."""
    if previous is None:
        return None
    interval = current.t - previous.t
    if interval <= 0:
        return None  # the wall clock stepped back: skip rather than divide by nothing
    endpoint_deltas = {
        key: delta(previous.endpoints.get(key), counts) for key, counts in current.endpoints.items()
    }
    by_upstream: dict[str, list[Counts]] = {}
    by_region: dict[str, list[Counts]] = {}
    for (upstream, _), counts in endpoint_deltas.items():
        by_upstream.setdefault(upstream, []).append(counts)
    for key, region in current.regions.items():
        if key in endpoint_deltas:
            by_region.setdefault(region, []).append(endpoint_deltas[key])
    routes = {
        name: features_of(delta(previous.routes.get(name), counts), interval)
        for name, counts in current.routes.items()
    }
    return Sample(
        t=current.t,
        interval=interval,
        endpoints={key: features_of(c, interval) for key, c in endpoint_deltas.items()},
        upstreams={name: features_of(combine(p), interval) for name, p in by_upstream.items()},
        regions={name: features_of(combine(p), interval) for name, p in by_region.items()},
        routes=routes,
    )
