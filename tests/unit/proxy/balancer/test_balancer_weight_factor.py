"""Every policy honours an endpoint's AI weight factor once reweighed, and only then."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from dispa.proxy.balancer import POLICIES, build_balancer
from dispa.proxy.balancer.maglev import Maglev
from dispa.proxy.balancer.ring_hash import RingHash
from dispa.proxy.balancer.weight_factor import (
    damped_factors,
    factor_steps,
    integer_weights,
    quantized_factor,
)
from dispa.proxy.balancer.weighted_round_robin import WeightedRoundRobin
from dispa.proxy.upstream.endpoint import Endpoint

PICKS = 6000


def make_endpoints(count: int = 3) -> list[Endpoint]:
    return [Endpoint("pool", f"10.0.0.{index}", 80) for index in range(count)]


def shares(balancer, picks: int = PICKS, keyed: bool = False) -> Counter:
    counts = Counter()
    for index in range(picks):
        key = f"client-{index}".encode() if keyed else None
        counts[balancer.pick(key)] += 1
    return counts


def test_factors_are_quantized_to_twentieths_and_never_to_zero():
    assert factor_steps(1.0) == 20 and factor_steps(0.2) == 4
    assert factor_steps(0.0) == 1 and factor_steps(0.001) == 1
    assert quantized_factor(0.33) == 0.35
    a, b = make_endpoints(2)
    b.weight, b.weight_factor = 3, 0.5
    assert integer_weights([a, b]) == [20, 30]


def test_damped_factors_are_relative_to_the_highest():
    a, b, c = make_endpoints()
    assert damped_factors([a, b, c]) == {}
    c.weight_factor = 0.2
    assert damped_factors([a, b, c]) == {c: pytest.approx(0.2)}
    for endpoint in (a, b, c):
        endpoint.weight_factor = 0.2  # all lowered alike is no change at all
    assert damped_factors([a, b, c]) == {}


@pytest.mark.parametrize("policy", POLICIES)
def test_a_lowered_endpoint_gets_a_small_share_and_it_returns_after_reweigh(policy):
    a, b, c = make_endpoints()
    balancer = build_balancer(policy, [a, b, c], rng=random.Random(7))
    keyed = policy in ("ring_hash", "maglev")
    before = shares(balancer, keyed=keyed)
    assert before[c] > PICKS * 0.2, (policy, before)

    c.weight_factor = 0.2
    unchanged = shares(balancer, keyed=keyed)  # read only when reweighed, never per pick
    assert unchanged[c] > PICKS * 0.2
    balancer.reweigh()
    lowered = shares(balancer, keyed=keyed)
    assert 0 < lowered[c] < before[c] * 0.45, (policy, before, lowered)
    assert lowered[a] > before[a] and lowered[b] > before[b]

    c.weight_factor = 1.0
    balancer.reweigh()
    again = shares(balancer, keyed=keyed)
    assert again[c] > PICKS * 0.2, (policy, again)


def test_weighted_round_robin_uses_exact_effective_weights():
    a, b, c = make_endpoints()
    c.weight_factor = 0.2
    balancer = WeightedRoundRobin([a, b, c])
    counts = shares(balancer, picks=440)  # one period is 20 + 20 + 4 = 44 picks
    assert counts == {a: 200, b: 200, c: 40}


@pytest.mark.parametrize("hashing", [RingHash, Maglev])
def test_hashing_moves_only_a_stable_part_of_the_lowered_endpoints_keys(hashing):
    endpoints = make_endpoints(4)
    options = {"table_size": 4099} if hashing is Maglev else {}
    balancer = hashing(endpoints, **options)
    keys = [f"user-{index}".encode() for index in range(2000)]
    before = {key: balancer.pick(key) for key in keys}
    lowered = endpoints[3]
    lowered.weight_factor = 0.2
    balancer.reweigh()
    after = {key: balancer.pick(key) for key in keys}
    moved = [key for key in keys if after[key] is not before[key]]
    # Only keys of the lowered endpoint move, about 80 % of them, and they stay put.
    assert all(before[key] is lowered for key in moved)
    owned = sum(1 for key in keys if before[key] is lowered)
    assert 0.65 * owned < len(moved) < 0.95 * owned
    assert all(balancer.pick(key) is after[key] for key in keys[:200])


def test_bounded_load_shares_follow_effective_weights():
    a, b = make_endpoints(2)
    balancer = RingHash([a, b], bounded_load=1.0)
    a.weight_factor = 0.25
    balancer.reweigh()
    a.active_requests, b.active_requests = 1, 0
    # a's capacity with one request in flight and a weight share of 1/5: ceil(0.2 * 2) = 1.
    assert balancer._bound.capacity(a, 1) == 1
    assert balancer._bound.capacity(b, 1) == 2
