import random

import pytest

from dispa.proxy.balancer.p2c_ewma import P2CEwma, observe_latency
from dispa.proxy.upstream.endpoint import Endpoint


def make_endpoint(index: int, ewma_latency: float, active_requests: int = 0) -> Endpoint:
    endpoint = Endpoint("pool", f"10.0.0.{index}", 80)
    endpoint.ewma_latency = ewma_latency
    endpoint.active_requests = active_requests
    return endpoint


def picks(balancer: P2CEwma, count: int = 100) -> set[Endpoint]:
    return {balancer.pick() for _ in range(count)}


def test_faster_endpoint_preferred():
    fast, slow = make_endpoint(0, 0.010), make_endpoint(1, 0.100)
    assert picks(P2CEwma([slow, fast], rng=random.Random(1))) == {fast}


def test_requests_in_flight_raise_the_cost():
    # fast costs 0.010 * (20 + 1) = 0.21, slow 0.100 * (0 + 1) = 0.1.
    fast, slow = make_endpoint(0, 0.010, active_requests=20), make_endpoint(1, 0.100)
    assert picks(P2CEwma([fast, slow], rng=random.Random(2))) == {slow}


def test_endpoint_without_a_sample_is_probed_first():
    unsampled, quick = make_endpoint(0, 0.0, active_requests=3), make_endpoint(1, 0.001)
    assert picks(P2CEwma([quick, unsampled], rng=random.Random(3))) == {unsampled}


def test_higher_weight_lowers_the_cost():
    heavy, light = make_endpoint(0, 0.030), make_endpoint(1, 0.020)
    heavy.weight = 2  # 0.030 / 2 = 0.015 per unit of weight, below 0.020
    assert picks(P2CEwma([heavy, light], rng=random.Random(4))) == {heavy}


def test_most_expensive_of_many_never_picked():
    endpoints = [make_endpoint(index, 0.01 * (index + 1)) for index in range(6)]
    balancer = P2CEwma(endpoints, rng=random.Random(5))
    chosen = [balancer.pick() for _ in range(2000)]
    assert endpoints[-1] not in chosen
    assert max(set(chosen), key=chosen.count) is endpoints[0]


def test_empty_pool_picks_none():
    assert P2CEwma([], rng=random.Random(1)).pick() is None


def test_single_endpoint_always_picked():
    only = make_endpoint(0, 5.0, active_requests=50)
    assert picks(P2CEwma([only], rng=random.Random(1)), 10) == {only}


def test_first_sample_is_taken_as_is():
    endpoint = make_endpoint(0, 0.0)
    observe_latency(endpoint, 0.250)
    assert endpoint.ewma_latency == 0.250


def test_later_samples_move_the_average_by_alpha():
    endpoint = make_endpoint(0, 0.0)
    observe_latency(endpoint, 0.100)
    observe_latency(endpoint, 0.200, alpha=0.3)
    assert endpoint.ewma_latency == pytest.approx(0.130)
    observe_latency(endpoint, 0.130, alpha=0.5)
    assert endpoint.ewma_latency == pytest.approx(0.130)


def test_zero_latency_still_counts_as_a_sample():
    endpoint = make_endpoint(0, 0.0)
    observe_latency(endpoint, 0.0)
    assert endpoint.ewma_latency > 0.0
