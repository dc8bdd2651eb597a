"""Power of two choices on a latency-aware cost (Finagle's and Linkerd's P2C + EWMA).

Cost = ewma_latency * (active_requests + 1) / weight: an endpoint that answers slowly,
or already has many requests in flight, looks expensive. Counting in-flight requests
makes the cost react at once to a stall, long before slow responses reach the average.
"""

from __future__ import annotations

from bisect import bisect_left

from dispa.observe.stats import LATENCY_BUCKETS
from dispa.proxy.balancer.two_choices import TwoChoices
from dispa.proxy.upstream.endpoint import Endpoint

# A measured latency of 0 (coarse clock) is stored as this, so that 0.0 keeps meaning
# "no sample yet".
SMALLEST_LATENCY = 1e-9


def observe_latency(endpoint: Endpoint, seconds: float, alpha: float = 0.3) -> None:
    """Fold one response latency into ``endpoint.ewma_latency`` (and count it by bucket).

    ``alpha`` (0 < alpha <= 1) is the weight of the new sample; the first sample is taken
    as is, so a new endpoint is not judged against an arbitrary starting value.
    """
    if seconds < SMALLEST_LATENCY:  # not max(): this runs once per response
        seconds = SMALLEST_LATENCY
    # The one count AI sampling needs per response (its p50/p99 per endpoint and second).
    endpoint.latency_counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
    previous = endpoint.ewma_latency
    endpoint.ewma_latency = seconds if previous == 0.0 else previous + alpha * (seconds - previous)


class P2CEwma(TwoChoices):
    """Pick two distinct endpoints uniformly; keep the cheaper one.

    An endpoint with no latency sample costs 0, so it wins its draws until its first
    response arrives: it gets probed, and P2C caps its exposure meanwhile at about 2/n of
    the requests.
    """

    def cost(self, endpoint: Endpoint, other_weight: float) -> float:
        return endpoint.ewma_latency * (endpoint.active_requests + 1) * other_weight
