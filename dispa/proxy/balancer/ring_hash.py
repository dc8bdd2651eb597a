"""Consistent hash ring, Ketama style.

Each endpoint owns points on a 64-bit circle; a key goes to the first point at or after
its hash, wrapping around. Removing an endpoint moves only the keys it owned; adding one
moves only the keys it takes over, about 1/n of them.

Points per endpoint: ``VNODES_PER_WEIGHT`` per unit of weight (Ketama uses 160). An
endpoint's share of the circle has a relative spread of about 1/sqrt(points), so 160
points keep shares within roughly +-8% (one sigma) of the weighted share.

The ring is capped at ``MAX_RING_SIZE`` points: 16384 gives 100 equal endpoints their
full 160 points, costs about 50 ms to build and 50 bytes a point (~0.8 MiB) at the cap.
Past the cap every endpoint's count is scaled down alike, keeping at least one point
each (and then adding an endpoint also thins every other one's points a little).

Point positions depend only on the endpoint's key and the replica number, never on the
other endpoints, so a ring rebuilt without one endpoint keeps every other point where it
was: only the removed endpoint's keys move.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from hashlib import blake2b

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.bounded_load import LoadBound
from dispa.proxy.balancer.weight_factor import damped_factors, keeps_turn
from dispa.proxy.upstream.endpoint import Endpoint

VNODES_PER_WEIGHT = 160
MAX_RING_SIZE = 1 << 14


class RingHash(Balancer):
    """Pick by hash_key on the ring; without a key, at a random point of the ring.

    A random point lands on an endpoint in proportion to its arc, hence to its weight.
    With ``bounded_load`` (a factor >= 1, see bounded_load.py), a full endpoint passes
    the request on clockwise to the next distinct endpoint with room.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        vnodes_per_weight: int = VNODES_PER_WEIGHT,
        max_ring_size: int = MAX_RING_SIZE,
        bounded_load: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(endpoints)
        # Built first: it validates the factor before the slow part.
        self._bound = LoadBound(self.endpoints, bounded_load) if bounded_load is not None else None
        total_weight = sum(endpoint.weight for endpoint in self.endpoints)
        points_per_weight = min(vnodes_per_weight, max_ring_size / max(total_weight, 1))
        # (position, key, index) sorts ties (a 2**-64 event) by endpoint key, not by list
        # order, so every node builds the same ring whatever order its endpoints came in.
        ring = sorted(
            (point, endpoint.key, index)
            for index, endpoint in enumerate(self.endpoints)
            for point in _points_of(endpoint, max(1, round(endpoint.weight * points_per_weight)))
        )
        # A plain list: bisect on it is about twice as fast as on array("Q"), for ~40
        # bytes per point instead of 8.
        self._points = [point for point, _, _ in ring]
        self._owners = tuple(self.endpoints[index] for _, _, index in ring)
        self._getrandbits = (rng or random.Random()).getrandbits
        self._damped: dict[Endpoint, float] = {}
        self.reweigh()

    def reweigh(self) -> None:
        # The ring itself never changes with AI factors (that would move other keys too):
        # a lowered endpoint passes a stable share of its keys on clockwise instead.
        self._damped = damped_factors(self.endpoints)
        if self._bound is not None:
            self._bound.reweigh()

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        owners = self._owners
        if len(self.endpoints) < 2:
            return owners[0] if owners else None
        if hash_key is None:
            point = self._getrandbits(64)
        else:
            point = int.from_bytes(blake2b(hash_key, digest_size=8).digest())
        index = bisect_left(self._points, point)
        if index == len(owners):
            index = 0
        if self._damped and owners[index] in self._damped:
            index = self._pass_on(index, point)
        if self._bound is None:
            return owners[index]
        return self._bound.choose(owners[index], self._clockwise_after, index)

    def _pass_on(self, index: int, point: int) -> int:
        """The first owner clockwise from ``index`` that keeps the key; the key's own bits
        draw the chance, so a key keeps going to the same endpoint."""
        draw = (point & 0xFFFF) / 0x10000
        damped = self._damped
        owners = self._owners
        for step in range(len(owners)):
            candidate = (index + step) % len(owners)
            if keeps_turn(damped.get(owners[candidate]), draw):
                return candidate
        return index  # unreachable: the highest-factor endpoint keeps every key

    def point_counts(self) -> dict[Endpoint, int]:
        """How many ring points each endpoint owns (its share is about count / ring size)."""
        counts = dict.fromkeys(self.endpoints, 0)
        for endpoint in self._owners:
            counts[endpoint] += 1
        return counts

    def _clockwise_after(self, index: int) -> Iterator[Endpoint]:
        owners = self._owners
        for step in range(1, len(owners)):
            yield owners[(index + step) % len(owners)]


def _points_of(endpoint: Endpoint, count: int) -> list[int]:
    """The ring positions of ``endpoint``: blake2b-64 of its key + an 8-byte replica number.

    The replica number has a fixed width, and keys are "host:port" (digits last), so no
    two (key, replica) pairs share bytes. Copying a hasher primed with the key is about
    twice as fast as hashing the concatenation afresh.
    """
    primed = blake2b(endpoint.key, digest_size=8)
    points = []
    for replica in range(count):
        hasher = primed.copy()
        hasher.update(replica.to_bytes(8))
        points.append(int.from_bytes(hasher.digest()))
    return points
