"""The power of two choices: draw two distinct endpoints, keep the better one.

Shared by ``least_request`` and ``p2c_ewma``, which differ only in what "better" means.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.weight_factor import damped_factors, keeps_turn
from dispa.proxy.upstream.endpoint import Endpoint


class TwoChoices(Balancer):
    def __init__(self, endpoints: Sequence[Endpoint], *, rng: random.Random | None = None) -> None:
        super().__init__(endpoints)
        self._random = (rng or random.Random()).random
        self.reweigh()

    def reweigh(self) -> None:
        # Costs are cross-multiplied by the other endpoint's configured weight; the AI factor
        # is applied to the winner instead: a lowered endpoint that wins its draw keeps the
        # request only with probability factor. Folding the factor into the weight would
        # zero it whenever the pool is idle (cost ties always go to the heavier one).
        self._weights = tuple(endpoint.weight for endpoint in self.endpoints)
        self._damped = damped_factors(self.endpoints)

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
        weights = self._weights
        # Ties go to the first: it is already a uniformly random member of the pair.
        if self.cost(second, weights[first_index]) < self.cost(first, weights[second_index]):
            first, second = second, first
        damped = self._damped
        if damped and not keeps_turn(damped.get(first), self._random()):
            return second
        return first

    def cost(self, endpoint: Endpoint, other_weight: float) -> float:
        """The endpoint's cost, scaled by the other's weight (cross-multiplied, no division)."""
        raise NotImplementedError
