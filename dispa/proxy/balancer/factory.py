"""Build the balancer a pool's policy names."""

from __future__ import annotations

import random
from collections.abc import Sequence

from dispa.config.schema import LB_POLICIES
from dispa.proxy.balancer.base import Balancer
from dispa.proxy.balancer.least_request import LeastRequest
from dispa.proxy.balancer.maglev import Maglev
from dispa.proxy.balancer.p2c_ewma import P2CEwma
from dispa.proxy.balancer.random_choice import RandomChoice
from dispa.proxy.balancer.ring_hash import RingHash
from dispa.proxy.balancer.round_robin import RoundRobin
from dispa.proxy.balancer.weighted_round_robin import WeightedRoundRobin
from dispa.proxy.upstream.endpoint import Endpoint

# The config model owns the list of policy names; the data plane builds what it names.
POLICIES = LB_POLICIES
# Policies that use the request's hash_key, and the only ones that take bounded_load.
HASHING_POLICIES = ("ring_hash", "maglev")


def build_balancer(
    policy: str,
    endpoints: Sequence[Endpoint],
    *,
    bounded_load: float | None = None,
    rng: random.Random | None = None,
) -> Balancer:
    """Build the ``policy`` balancer over ``endpoints`` (the available ones).

    ``bounded_load`` is the balance factor (>= 1.0) of consistent hashing with bounded
    loads, for hashing policies only; ``rng`` makes random choices reproducible in tests.
    Raises ValueError for an unknown policy or a misplaced or invalid bounded_load.
    """
    if policy not in POLICIES:
        raise ValueError(
            f"unknown balancing policy {policy!r}; valid policies: {', '.join(POLICIES)}"
        )
    if bounded_load is not None and policy not in HASHING_POLICIES:
        raise ValueError(
            f"bounded_load applies only to hashing policies ({', '.join(HASHING_POLICIES)}),"
            f" not to {policy!r}"
        )
    rng = rng or random.Random()
    match policy:
        case "round_robin":
            return RoundRobin(endpoints, start=rng.randrange(max(len(endpoints), 1)))
        case "weighted_round_robin":
            return WeightedRoundRobin(endpoints)
        case "random":
            return RandomChoice(endpoints, rng=rng)
        case "least_request":
            return LeastRequest(endpoints, rng=rng)
        case "p2c_ewma":
            return P2CEwma(endpoints, rng=rng)
        case "ring_hash":
            return RingHash(endpoints, bounded_load=bounded_load, rng=rng)
        case _:  # "maglev", the one policy left
            return Maglev(endpoints, bounded_load=bounded_load, rng=rng)
