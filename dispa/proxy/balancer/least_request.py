"""Least request by the power of two choices.

Scanning every endpoint for the least loaded one is O(n), and every gateway worker would
pile onto the same idle endpoint at once. Sampling two at random and keeping the less
loaded one is O(1) and, as Mitzenmacher showed, nearly as even (Envoy's default).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.endpoint import Endpoint


class LeastRequest(Balancer):
    """Pick two distinct endpoints uniformly; keep the one with fewer requests per weight.

    Load is compared as (active_requests + 1) / weight, so with equal weights it is plain
    active_requests, and a weight-2 endpoint settles at twice the in-flight requests of a
    weight-1 one (Envoy's active-request bias of 1.0). Sampling itself ignores weights.
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
        # Draw from the count - 1 others, skipping first_index, so the two are distinct.
        second_index = int(self._random() * (count - 1))
        if second_index >= first_index:
            second_index += 1
        first, second = endpoints[first_index], endpoints[second_index]
        # Cross-multiplied to compare (active + 1) / weight without dividing. On a tie the
        # first wins: it is as likely to be either of the pair, so ties are already random.
        first_load = (first.active_requests + 1) * second.weight
        second_load = (second.active_requests + 1) * first.weight
        return second if second_load < first_load else first
