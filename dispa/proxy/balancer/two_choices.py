"""The power of two choices: draw two distinct endpoints, keep the better one.

Shared by ``least_request`` and ``p2c_ewma``, which differ only in what "better" means.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.endpoint import Endpoint


class TwoChoices(Balancer):
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
        # Ties go to the first: it is already a uniformly random member of the pair.
        return second if self.cost(second, first) < self.cost(first, second) else first

    def cost(self, endpoint: Endpoint, other: Endpoint) -> float:
        """The endpoint's cost, scaled by the other's weight (cross-multiplied, no division)."""
        raise NotImplementedError
