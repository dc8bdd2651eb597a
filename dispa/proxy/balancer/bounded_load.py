"""Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, 2016).

Plain consistent hashing sends a hot key's every request to one endpoint. With a balance
factor c >= 1, endpoint i may take a request only while

    active_i + 1 <= ceil(c * (total_active + 1) * weight_i / total_weight)

(with equal weights: ceil(c * (total_active + 1) / n)), i.e. no endpoint carries more
than c times its weighted share of the requests in flight, counting this one. Weights
are honoured, as Envoy's hash_balance_factor does. A key whose endpoint is full goes to
its next candidate (next on the ring, next probe in the Maglev table), so it still sticks
to a stable second choice while the first is busy.

Since the capacities sum to at least c * (total_active + 1) > total_active, some endpoint
always has room: the walk always ends on one that fits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from math import ceil
from operator import attrgetter

from dispa.proxy.balancer.weight_factor import effective_weights
from dispa.proxy.upstream.endpoint import Endpoint

_active_requests = attrgetter("active_requests")

# Absorbs float error so that a share that is a whole number in exact arithmetic
# (1.25 * 4 / 5 == 1) is not rounded up by ceil() to one more slot.
_EPSILON = 1e-9


class LoadBound:
    """The admission rule for one endpoint set and balance factor."""

    def __init__(self, endpoints: Sequence[Endpoint], factor: float) -> None:
        if not factor >= 1.0:
            raise ValueError(f"bounded_load must be >= 1.0, got {factor!r}")
        self.endpoints = tuple(endpoints)
        self.factor = factor
        self.reweigh()

    def reweigh(self) -> None:
        """Recompute shares from effective weights (weight x AI factor)."""
        weights = effective_weights(self.endpoints)
        total_weight = sum(weights)
        # Each endpoint's factor-inflated share of the total load.
        self._share = {
            endpoint: self.factor * weight / total_weight
            for endpoint, weight in zip(self.endpoints, weights, strict=True)
        }

    def capacity(self, endpoint: Endpoint, total_active: int) -> int:
        """How many requests ``endpoint`` may have in flight, counting a new one."""
        return ceil(self._share[endpoint] * (total_active + 1) - _EPSILON)

    def total_active(self) -> int:
        # O(n), paid only when the first candidate is busy (see choose); Envoy's bounded
        # load is O(n) for the same reason.
        return sum(map(_active_requests, self.endpoints))

    def choose(
        self,
        first: Endpoint,
        alternatives: Callable[[int], Iterator[Endpoint]],
        start: int,
    ) -> Endpoint:
        """Return ``first`` if it has room, else the first of ``alternatives(start)`` that
        has, else the endpoint with the most room.

        ``alternatives`` is only called when ``first`` is full, so the common case builds
        no iterator. It may repeat endpoints; after every endpoint has been seen once the
        walk stops, so it never loops forever.
        """
        # An idle endpoint always fits: its capacity is ceil of a positive number, >= 1.
        if first.active_requests == 0:
            return first
        total_active = self.total_active()
        if first.active_requests < self.capacity(first, total_active):
            return first
        seen = {first}
        for candidate in alternatives(start):
            if candidate in seen:
                continue
            if candidate.active_requests < self.capacity(candidate, total_active):
                return candidate
            seen.add(candidate)
            if len(seen) == len(self.endpoints):
                break
        # Reached only when the alternatives ended before finding room (Maglev's probes
        # are capped): the endpoint with the most room has room, as shown above.
        return max(
            self.endpoints,
            key=lambda endpoint: self.capacity(endpoint, total_active) - endpoint.active_requests,
        )
