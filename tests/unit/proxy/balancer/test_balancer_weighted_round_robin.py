from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy.balancer.weighted_round_robin import WeightedRoundRobin
from dispa.proxy.upstream.endpoint import Endpoint


def make_endpoints(*weights: int) -> list[Endpoint]:
    return [Endpoint("pool", f"10.0.0.{index}", 80, weight) for index, weight in enumerate(weights)]


def test_nginx_sequence_for_weights_5_1_1():
    a, b, c = make_endpoints(5, 1, 1)
    balancer = WeightedRoundRobin([a, b, c])
    assert [balancer.pick() for _ in range(14)] == [a, a, b, a, c, a, a] * 2


def test_weights_2_1_interleave():
    a, b = make_endpoints(2, 1)
    balancer = WeightedRoundRobin([a, b])
    assert [balancer.pick() for _ in range(6)] == [a, b, a, a, b, a]


def test_equal_weights_rotate_in_order():
    a, b, c = make_endpoints(3, 3, 3)
    balancer = WeightedRoundRobin([a, b, c])
    assert [balancer.pick() for _ in range(4)] == [a, b, c, a]


def test_empty_pool_picks_none():
    assert WeightedRoundRobin([]).pick() is None
    assert WeightedRoundRobin([], schedule_budget=0).pick() is None


def test_single_endpoint_always_picked():
    (only,) = make_endpoints(4)
    balancer = WeightedRoundRobin([only])
    assert {balancer.pick() for _ in range(5)} == {only}


weight_lists = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=8)


@settings(max_examples=50, deadline=None)
@given(weights=weight_lists)
def test_precomputed_schedule_matches_live_algorithm(weights):
    endpoints = make_endpoints(*weights)
    precomputed = WeightedRoundRobin(endpoints)
    live = WeightedRoundRobin(endpoints, schedule_budget=0)
    picks = 3 * sum(weights)
    assert [precomputed.pick() for _ in range(picks)] == [live.pick() for _ in range(picks)]


@settings(max_examples=50, deadline=None)
@given(weights=weight_lists, periods=st.integers(min_value=1, max_value=5))
def test_each_full_cycle_serves_exactly_the_weights(weights, periods):
    # Stronger than "within a tolerance": smooth WRR is exact over every sum(weights) picks.
    endpoints = make_endpoints(*weights)
    for balancer in (
        WeightedRoundRobin(endpoints),
        WeightedRoundRobin(endpoints, schedule_budget=0),
    ):
        counts = Counter(balancer.pick() for _ in range(periods * sum(weights)))
        assert counts == {endpoint: periods * endpoint.weight for endpoint in endpoints}
