import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy.balancer.random_choice import RandomChoice
from dispa.proxy.upstream.endpoint import Endpoint


def make_endpoints(*weights: int) -> list[Endpoint]:
    return [Endpoint("pool", f"10.0.0.{index}", 80, weight) for index, weight in enumerate(weights)]


def test_same_seed_same_choices():
    endpoints = make_endpoints(1, 2, 3)
    first = RandomChoice(endpoints, rng=random.Random(42))
    second = RandomChoice(endpoints, rng=random.Random(42))
    assert [first.pick() for _ in range(50)] == [second.pick() for _ in range(50)]


def test_empty_pool_picks_none():
    assert RandomChoice([], rng=random.Random(1)).pick() is None


def test_single_endpoint_always_picked():
    (only,) = make_endpoints(3)
    balancer = RandomChoice([only], rng=random.Random(1))
    assert {balancer.pick() for _ in range(20)} == {only}


PICKS = 20_000
# The observed share of an endpoint has a standard deviation of at most
# sqrt(0.25 / PICKS) = 0.0035; 0.02 is over 5 sigma, so a failure means a wrong share.
SHARE_TOLERANCE = 0.02


@settings(max_examples=20, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=10),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_shares_follow_weights(weights, seed):
    endpoints = make_endpoints(*weights)
    balancer = RandomChoice(endpoints, rng=random.Random(seed))
    counts = Counter(balancer.pick() for _ in range(PICKS))
    total_weight = sum(weights)
    for endpoint in endpoints:
        expected_share = endpoint.weight / total_weight
        assert abs(counts[endpoint] / PICKS - expected_share) <= SHARE_TOLERANCE
