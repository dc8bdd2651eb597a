import random

import pytest

import dispa.proxy.balancer as balancer_package
from dispa.proxy.balancer import HASHING_POLICIES, POLICIES, Balancer, build_balancer
from dispa.proxy.balancer.least_request import LeastRequest
from dispa.proxy.balancer.maglev import Maglev
from dispa.proxy.balancer.p2c_ewma import P2CEwma
from dispa.proxy.balancer.random_choice import RandomChoice
from dispa.proxy.balancer.ring_hash import RingHash
from dispa.proxy.balancer.round_robin import RoundRobin
from dispa.proxy.balancer.weighted_round_robin import WeightedRoundRobin
from dispa.proxy.upstream.endpoint import Endpoint

EXPECTED_CLASSES = {
    "round_robin": RoundRobin,
    "weighted_round_robin": WeightedRoundRobin,
    "random": RandomChoice,
    "least_request": LeastRequest,
    "p2c_ewma": P2CEwma,
    "ring_hash": RingHash,
    "maglev": Maglev,
}


def make_endpoints(count: int) -> list[Endpoint]:
    return [Endpoint("pool", f"10.0.0.{index}", 80, index + 1) for index in range(count)]


def test_package_exports():
    assert set(balancer_package.__all__) == {
        "Balancer",
        "HASHING_POLICIES",
        "POLICIES",
        "build_balancer",
    }
    assert set(POLICIES) == set(EXPECTED_CLASSES)
    assert HASHING_POLICIES == ("ring_hash", "maglev")


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_builds_and_picks(policy):
    endpoints = make_endpoints(4)
    balancer = build_balancer(policy, endpoints, rng=random.Random(1))
    assert type(balancer) is EXPECTED_CLASSES[policy]
    assert isinstance(balancer, Balancer)
    assert balancer.endpoints == tuple(endpoints)
    assert balancer.pick(b"key") in endpoints
    assert balancer.pick() in endpoints


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_picks_none_from_an_empty_pool(policy):
    balancer = build_balancer(policy, [], rng=random.Random(1))
    assert balancer.pick(b"key") is None
    assert balancer.pick() is None


@pytest.mark.parametrize("policy", HASHING_POLICIES)
def test_hashing_policies_take_a_bounded_load(policy):
    endpoints = make_endpoints(3)
    balancer = build_balancer(policy, endpoints, bounded_load=1.25)
    assert balancer.pick(b"key") in endpoints


def test_round_robin_starts_at_a_seeded_random_offset():
    endpoints = make_endpoints(5)
    starts = {
        build_balancer("round_robin", endpoints, rng=random.Random(seed)).pick()
        for seed in range(30)
    }
    assert len(starts) > 1


def test_unknown_policy_names_the_valid_ones():
    with pytest.raises(ValueError) as error:
        build_balancer("fastest", make_endpoints(2))
    message = str(error.value)
    assert "'fastest'" in message
    assert all(policy in message for policy in POLICIES)


def test_bounded_load_is_only_for_hashing_policies():
    with pytest.raises(ValueError, match="only to hashing policies"):
        build_balancer("round_robin", make_endpoints(2), bounded_load=1.25)


@pytest.mark.parametrize("policy", HASHING_POLICIES)
@pytest.mark.parametrize("factor", [0.0, 0.5, float("nan")])
def test_bounded_load_below_one_is_rejected(policy, factor):
    with pytest.raises(ValueError, match=r">= 1\.0"):
        build_balancer(policy, make_endpoints(2), bounded_load=factor)
