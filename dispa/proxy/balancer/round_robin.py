"""Round robin: every endpoint in turn, weights ignored."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import cycle

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.endpoint import Endpoint


class RoundRobin(Balancer):
    """Rotate through the endpoints in order, starting at index ``start``.

    The balancer is rebuilt whenever the available set changes; starting every rebuild
    at index 0 would hand the first endpoint extra requests, so the factory passes a
    random ``start`` (as Envoy seeds its round robin).
    """

    def __init__(self, endpoints: Sequence[Endpoint], *, start: int = 0) -> None:
        super().__init__(endpoints)
        offset = start % len(self.endpoints) if self.endpoints else 0
        self._rotation = cycle(self.endpoints[offset:] + self.endpoints[:offset])

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        # next() with a default: an empty cycle yields None instead of raising.
        return next(self._rotation, None)
