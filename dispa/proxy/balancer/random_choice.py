"""Weighted random choice: each pick independent, in proportion to effective weight."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.weight_factor import effective_weights
from dispa.proxy.upstream.endpoint import Endpoint


class RandomChoice(Balancer):
    def __init__(self, endpoints: Sequence[Endpoint], *, rng: random.Random | None = None) -> None:
        super().__init__(endpoints)
        self._random = (rng or random.Random()).random
        self.reweigh()

    def reweigh(self) -> None:
        # cumulative[i] is the end of endpoint i's slice of [0, total weight).
        self._cumulative = list(accumulate(effective_weights(self.endpoints)))
        self._total_weight = self._cumulative[-1] if self._cumulative else 0

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        if not self._total_weight:
            return None
        # random() < 1.0, so the point is below the total; min() guards against a float
        # product rounding up to the total itself.
        point = self._random() * self._total_weight
        return self.endpoints[min(bisect_right(self._cumulative, point), len(self.endpoints) - 1)]
