"""Smooth weighted round robin, nginx's algorithm.

On every pick each endpoint's ``current`` grows by its weight, the endpoint with the
largest ``current`` wins (the first one on ties) and pays back the total weight. Heavy
endpoints are spread out instead of served in bursts: weights 5, 1, 1 give a a b a c a a.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from itertools import cycle
from math import gcd

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.weight_factor import integer_weights
from dispa.proxy.upstream.endpoint import Endpoint

# The sequence repeats every sum(weights) / gcd(weights) picks. When computing one period
# costs at most this many steps (period x endpoints), it is computed once at build time
# and pick() just walks it, O(1). Past the budget (large, unevenly weighted pools) pick()
# runs the algorithm live, O(n), rather than stall the event loop while building.
SCHEDULE_BUDGET = 1 << 18


class WeightedRoundRobin(Balancer):
    def __init__(
        self, endpoints: Sequence[Endpoint], *, schedule_budget: int = SCHEDULE_BUDGET
    ) -> None:
        super().__init__(endpoints)
        self._schedule_budget = schedule_budget
        self.reweigh()

    def reweigh(self) -> None:
        # Effective weights in whole units (weight x AI factor steps): with no factor
        # lowered, every weight is scaled alike and the sequence is the configured one.
        self._weights = integer_weights(self.endpoints)
        self._total_weight = sum(self._weights)
        self._current = [0] * len(self.endpoints)
        period = self._total_weight // reduce(gcd, self._weights, 0) if self.endpoints else 0
        if len(set(self._weights)) <= 1:
            # Equal weights: the smooth sequence is plain rotation in list order.
            self._schedule = cycle(self.endpoints)
        elif period * len(self.endpoints) <= self._schedule_budget:
            self._schedule = cycle([self._pick_live() for _ in range(period)])
        else:
            self._schedule = None

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        if self._schedule is not None:
            return next(self._schedule, None)
        return self._pick_live()

    def _pick_live(self) -> Endpoint:
        current = self._current
        best_index = 0
        best_current = None
        for index, weight in enumerate(self._weights):
            value = current[index] + weight
            current[index] = value
            if best_current is None or value > best_current:
                best_index, best_current = index, value
        current[best_index] -= self._total_weight
        return self.endpoints[best_index]
