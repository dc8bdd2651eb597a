"""Power of two choices on a latency-aware cost (Finagle's and Linkerd's P2C + EWMA).

Cost = ewma_latency * (active_requests + 1) / weight: an endpoint that answers slowly,
or already has many requests in flight, looks expensive. Counting in-flight requests
makes the cost react at once to a stall, long before slow responses reach the average.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.endpoint import Endpoint

# A measured latency of 0 (coarse clock) is stored as this, so that 0.0 keeps meaning
# "no sample yet".
SMALLEST_LATENCY = 1e-9


def observe_latency(endpoint: Endpoint, seconds: float, alpha: float = 0.3) -> None:
    """Fold one response latency into ``endpoint.ewma_latency``.

    ``alpha`` (0 < alpha <= 1) is the weight of the new sample; the first sample is taken
    as is, so a new endpoint is not judged against an arbitrary starting value.
    """
    seconds = max(seconds, SMALLEST_LATENCY)
    previous = endpoint.ewma_latency
    endpoint.ewma_latency = seconds if previous == 0.0 else previous + alpha * (seconds - previous)


class P2CEwma(Balancer):
    """Pick two distinct endpoints uniformly; keep the cheaper one.

    An endpoint with no latency sample costs 0, so it wins its draws until its first
    response arrives: it gets probed, and P2C caps its exposure meanwhile at about 2/n of
    the requests.
    """

    def __init__(self, endpoints: Sequence[Endpoint], *, rng: random.Random | None = None) -> None:
        super().__init__(endpoints)
        self._random = (rng or random.Random()).random

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        endpoints = self.endpoints
        count = len(endpoints)
        if count < 2:
            return endpoints[0] if endpoints else None
        first_index = int(self._random() * count)
        second_index = int(self._random() * (count - 1))
        if second_index >= first_index:
            second_index += 1
        first, second = endpoints[first_index], endpoints[second_index]
        # Costs cross-multiplied by the other's weight to avoid dividing; ties go to the
        # first, which is already a uniformly random member of the pair.
        first_cost = first.ewma_latency * (first.active_requests + 1) * second.weight
        second_cost = second.ewma_latency * (second.active_requests + 1) * first.weight
        return second if second_cost < first_cost else first
