"""Round robin: every endpoint in turn, weights ignored."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import cycle

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.weight_factor import damped_factors, keeps_turn
from dispa.proxy.upstream.endpoint import Endpoint


class RoundRobin(Balancer):
    """Rotate through the endpoints in order, starting at index ``start``.

    The balancer is rebuilt whenever the available set changes; starting every rebuild
    at index 0 would hand the first endpoint extra requests, so the factory passes a
    random ``start`` (as Envoy seeds its round robin).

    Weights are ignored, but an AI weight factor below 1 is honoured: such an endpoint's
    turn is passed on to the next one with probability 1 - factor.
    """

    def __init__(
        self, endpoints: Sequence[Endpoint], *, start: int = 0, rng: random.Random | None = None
    ) -> None:
        super().__init__(endpoints)
        offset = start % len(self.endpoints) if self.endpoints else 0
        self._rotation = cycle(self.endpoints[offset:] + self.endpoints[:offset])
        self._random = (rng or random.Random()).random
        self._damped: dict[Endpoint, float] = {}
        self.reweigh()

    def reweigh(self) -> None:
        self._damped = damped_factors(self.endpoints)

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        # next() with a default: an empty cycle yields None instead of raising.
        endpoint = next(self._rotation, None)
        damped = self._damped
        if not damped:
            return endpoint
        # The highest-factor endpoint always keeps its turn (see damped_factors), so the
        # walk ends within one turn of the rotation.
        while not keeps_turn(damped.get(endpoint), self._random()):
            endpoint = next(self._rotation)
        return endpoint
