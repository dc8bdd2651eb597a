"""Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted as Envoy does.

A lookup table of prime size M maps hash % M to an endpoint. Each endpoint walks its own
permutation of the slots (offset + j * skip, mod M, both derived from its key) and takes
turns claiming the next free slot of its walk. Compared with a ring, pick is one modulo
and one index instead of a binary search, and shares are exact to within a few slots:
the price is a little more key movement when the set changes (measured in the tests).

Weights: an endpoint takes a turn on every pass in proportion weight / max weight, so
its slot count follows its weight. Endpoints fill in key order, not list order, so every
node builds the same table whatever order its endpoints arrived in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from hashlib import blake2b

from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.bounded_load import LoadBound
from dispa.proxy.balancer.stable_hash import hash64
from dispa.proxy.balancer.weight_factor import damped_factors, keeps_turn
from dispa.proxy.upstream.endpoint import Endpoint

# Envoy's default: about 512 KiB of references per pool, and shares even to 1/65537.
# Building it takes about 0.1 s in Python; pass a smaller prime for small pools.
DEFAULT_TABLE_SIZE = 65537

# With bounded load, a full endpoint's request probes this many further slots per
# endpoint before settling for the endpoint with the most room.
PROBES_PER_ENDPOINT = 4


def is_prime(number: int) -> bool:
    if number < 2:
        return False
    divisor = 2
    while divisor * divisor <= number:
        if number % divisor == 0:
            return False
        divisor += 1
    return True


class Maglev(Balancer):
    """Pick by hash_key in the table; without a key, at a random slot.

    A random slot lands on an endpoint in proportion to its slot count, hence to its
    weight. With ``bounded_load`` (see bounded_load.py) a full endpoint's request probes
    further slots by double hashing on the key's hash: each key overflows to its own
    stable sequence of endpoints, so one busy endpoint's overflow is spread over all
    others instead of piling onto a single neighbour.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        table_size: int = DEFAULT_TABLE_SIZE,
        bounded_load: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(endpoints)
        # Built first: it validates the factor before the slow part.
        self._bound = LoadBound(self.endpoints, bounded_load) if bounded_load is not None else None
        if not is_prime(table_size):
            raise ValueError(f"maglev table_size must be prime, got {table_size}")
        if table_size < len(self.endpoints):
            raise ValueError(
                f"maglev table_size {table_size} is smaller than the {len(self.endpoints)} "
                "endpoints; every endpoint needs a slot"
            )
        self._table = build_table(self.endpoints, table_size) if self.endpoints else ()
        self._getrandbits = (rng or random.Random()).getrandbits
        self._damped: dict[Endpoint, float] = {}
        self.reweigh()

    def reweigh(self) -> None:
        # The table never changes with AI factors (rebuilding costs 0.1 s and moves other
        # keys): a lowered endpoint passes a stable share of its keys to its next probes.
        self._damped = damped_factors(self.endpoints)
        if self._bound is not None:
            self._bound.reweigh()

    def pick(self, hash_key: bytes | None = None) -> Endpoint | None:
        if len(self.endpoints) < 2:
            return self.endpoints[0] if self.endpoints else None
        if hash_key is None:
            key_hash = self._getrandbits(64)
        else:
            key_hash = int.from_bytes(blake2b(hash_key, digest_size=8).digest())
        table = self._table
        endpoint = table[key_hash % len(table)]
        if self._damped and endpoint in self._damped:
            endpoint = self._pass_on(endpoint, key_hash)
        if self._bound is None:
            return endpoint
        return self._bound.choose(endpoint, self._probe_after, key_hash)

    def slot_counts(self) -> dict[Endpoint, int]:
        """How many table slots each endpoint owns (its share is count / table size)."""
        counts = dict.fromkeys(self.endpoints, 0)
        for endpoint in self._table:
            counts[endpoint] += 1
        return counts

    def _pass_on(self, endpoint: Endpoint, key_hash: int) -> Endpoint:
        """The first of the key's probes that keeps it; bits of the key's hash that neither
        the slot nor the probe step use draw the chance, so a key stays where it went."""
        draw = ((key_hash >> 16) & 0xFFFF) / 0x10000
        damped = self._damped
        for candidate in self._probe_after(key_hash):
            if keeps_turn(damped.get(candidate), draw):
                return candidate
        return endpoint  # every probe was passed over: keep the table's choice

    def _probe_after(self, key_hash: int) -> Iterator[Endpoint]:
        table = self._table
        size = len(table)
        # Step in 1..size-1, coprime with the prime size: the probes visit distinct slots.
        step = (key_hash >> 32) % (size - 1) + 1
        slot = key_hash % size
        for _ in range(PROBES_PER_ENDPOINT * len(self.endpoints)):
            slot = (slot + step) % size
            yield table[slot]


def build_table(endpoints: Sequence[Endpoint], size: int) -> tuple[Endpoint, ...]:
    """Fill a Maglev table of ``size`` slots, turns taken in proportion to weight."""
    ordered = sorted(endpoints, key=lambda endpoint: endpoint.key)
    count = len(ordered)
    weights = [endpoint.weight for endpoint in ordered]
    max_weight = max(weights)
    # position[i] is endpoint i's current slot on its permutation; skip[i] its stride.
    position = [hash64(endpoint.key, person=b"maglev-offset") % size for endpoint in ordered]
    skip = [hash64(endpoint.key, person=b"maglev-skip") % (size - 1) + 1 for endpoint in ordered]
    # Endpoint i plays on pass p when p * weight >= next_turn[i]; each turn pushes that
    # back by max_weight, so over P passes it plays about P * weight / max_weight times.
    next_turn = [0] * count
    owner = [-1] * size
    filled = 0
    passes = 0
    while filled < size:
        passes += 1
        for index in range(count):
            if passes * weights[index] < next_turn[index]:
                continue
            next_turn[index] += max_weight
            slot = position[index]
            while owner[slot] >= 0:
                slot += skip[index]
                if slot >= size:
                    slot -= size
            owner[slot] = index
            position[index] = slot
            filled += 1
            if filled == size:
                break
    return tuple(ordered[index] for index in owner)
