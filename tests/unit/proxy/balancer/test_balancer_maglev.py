import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy.balancer.maglev import DEFAULT_TABLE_SIZE, Maglev
from dispa.proxy.upstream.endpoint import Endpoint

# A prime well above 100 x the endpoints tested, and 8x faster to build than the default.
TABLE_SIZE = 8191


def make_endpoints(count: int, seed: int = 0, weights: list[int] | None = None) -> list[Endpoint]:
    rng = random.Random(seed)
    return [
        Endpoint(
            "pool",
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{index}",
            8080,
            weights[index] if weights else 1,
        )
        for index in range(count)
    ]


def make_keys(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(12) for _ in range(count)]


def test_mapping_is_pinned():
    endpoints = [Endpoint("pool", f"10.0.0.{index}", 8080) for index in range(1, 6)]
    maglev = Maglev(endpoints, table_size=TABLE_SIZE)
    assert {key: maglev.pick(key).address for key in (b"user-1", b"user-2", b"203.0.113.9")} == {
        b"user-1": "10.0.0.5:8080",
        b"user-2": "10.0.0.3:8080",
        b"203.0.113.9": "10.0.0.4:8080",
    }


def test_endpoint_order_does_not_matter():
    endpoints = make_endpoints(8, weights=[1, 2, 3, 1, 2, 3, 1, 2])
    shuffled = endpoints[:]
    random.Random(1).shuffle(shuffled)
    keys = make_keys(500, seed=2)
    first, second = (
        Maglev(endpoints, table_size=TABLE_SIZE),
        Maglev(shuffled, table_size=TABLE_SIZE),
    )
    assert [first.pick(key) for key in keys] == [second.pick(key) for key in keys]


def test_default_table_is_envoys_prime():
    endpoints = make_endpoints(3)
    counts = Maglev(endpoints).slot_counts()
    assert DEFAULT_TABLE_SIZE == 65537
    assert sum(counts.values()) == 65537
    assert max(counts.values()) - min(counts.values()) <= 1


@pytest.mark.parametrize("size", [0, 1, 4096, 65536])
def test_table_size_must_be_prime(size):
    with pytest.raises(ValueError, match="prime"):
        Maglev(make_endpoints(2), table_size=size)


def test_table_must_have_a_slot_per_endpoint():
    with pytest.raises(ValueError, match="smaller than the 5 endpoints"):
        Maglev(make_endpoints(5), table_size=3)


def test_empty_pool_picks_none():
    assert Maglev([], table_size=7).pick(b"key") is None
    assert Maglev([], table_size=7).pick() is None


def test_single_endpoint_always_picked():
    (only,) = make_endpoints(1)
    maglev = Maglev([only], table_size=7)
    assert {maglev.pick(key) for key in make_keys(20, seed=1)} | {maglev.pick()} == {only}


def test_without_a_key_picks_spread_by_weight():
    endpoints = make_endpoints(3, weights=[1, 1, 2])
    maglev = Maglev(endpoints, table_size=TABLE_SIZE, rng=random.Random(5))
    counts = Counter(maglev.pick() for _ in range(8000))
    # The heaviest owns half the table; 4000 expected, standard deviation about 45.
    assert 3700 <= counts[endpoints[2]] <= 4300


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=12))
def test_slot_counts_match_weights_to_a_few_slots(weights):
    # Endpoint i takes turns on passes p with turn * max_weight <= p * weight_i, so its count
    # is within one of P * weight_i / max_weight; fitting the total to the table spreads
    # the others' rounding (at most one each) by share: error <= 1 + n * weight_i / total.
    endpoints = make_endpoints(len(weights), weights=weights)
    counts = Maglev(endpoints, table_size=TABLE_SIZE).slot_counts()
    total_weight = sum(weights)
    for endpoint in endpoints:
        share = endpoint.weight / total_weight
        assert abs(counts[endpoint] - TABLE_SIZE * share) <= 1 + len(endpoints) * share


def test_skewed_weights_still_fill_by_share():
    endpoints = make_endpoints(12, weights=[20] + [1] * 11)
    counts = Maglev(endpoints, table_size=TABLE_SIZE).slot_counts()
    assert abs(counts[endpoints[0]] - TABLE_SIZE * 20 / 31) <= 1 + 12 * 20 / 31


KEYS = 2000
# Keys moved when one endpoint leaves or joins, as a multiple of the ideal 1/n. Maglev
# moves a few keys between endpoints that stay, more so in a small table. Measured with
# a 8191-slot table over 300 random sets (n = 3..20, 2000 keys): at most 1.49 (mean 1.09)
# on removal and 1.49 (mean 1.10) on addition; with the default 65537 slots at most 1.28
# (mean 1.03). Sampling noise of 2000 keys is ~10% at n = 20; 1.8 leaves > 3 sigma.
MAGLEV_MOVE_SLACK = 1.8


def moved_fraction(before: Maglev, after: Maglev, keys: list[bytes]) -> float:
    return sum(before.pick(key) is not after.pick(key) for key in keys) / len(keys)


@settings(max_examples=20, deadline=None)
@given(
    count=st.integers(min_value=3, max_value=20),
    seed=st.integers(min_value=0, max_value=2**32),
    data=st.data(),
)
def test_removing_an_endpoint_moves_about_its_share(count, seed, data):
    endpoints = make_endpoints(count, seed)
    removed = data.draw(st.sampled_from(endpoints))
    remaining = [endpoint for endpoint in endpoints if endpoint is not removed]
    before = Maglev(endpoints, table_size=TABLE_SIZE)
    after = Maglev(remaining, table_size=TABLE_SIZE)
    assert moved_fraction(before, after, make_keys(KEYS, seed)) <= MAGLEV_MOVE_SLACK / count


@settings(max_examples=20, deadline=None)
@given(count=st.integers(min_value=3, max_value=20), seed=st.integers(min_value=0, max_value=2**32))
def test_adding_an_endpoint_moves_about_its_share(count, seed):
    endpoints = make_endpoints(count, seed)
    before = Maglev(endpoints, table_size=TABLE_SIZE)
    after = Maglev([*endpoints, Endpoint("pool", "192.168.0.1", 8080)], table_size=TABLE_SIZE)
    assert moved_fraction(before, after, make_keys(KEYS, seed)) <= MAGLEV_MOVE_SLACK / (count + 1)


DISTRIBUTION_KEYS = 20_000
# Slot shares are exact to a few slots in 8191 (see above), so what is left is the sampling
# noise of 20000 keys: sigma ~3.1% for n = 20. Measured over 200 random sets, the worst
# endpoint was 10.0% off with equal weights and 5.5% with weights 1:2:3. 15% is ~5 sigma.
MAGLEV_SHARE_TOLERANCE = 0.15


def assert_shares_follow_weights(maglev: Maglev, endpoints: list[Endpoint], seed: int) -> None:
    counts = Counter(maglev.pick(key) for key in make_keys(DISTRIBUTION_KEYS, seed))
    total_weight = sum(endpoint.weight for endpoint in endpoints)
    for endpoint in endpoints:
        expected = DISTRIBUTION_KEYS * endpoint.weight / total_weight
        assert abs(counts[endpoint] - expected) / expected <= MAGLEV_SHARE_TOLERANCE


@settings(max_examples=12, deadline=None)
@given(count=st.integers(min_value=3, max_value=20), seed=st.integers(min_value=0, max_value=2**32))
def test_equal_weights_share_keys_evenly(count, seed):
    endpoints = make_endpoints(count, seed)
    assert_shares_follow_weights(Maglev(endpoints, table_size=TABLE_SIZE), endpoints, seed)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_shares_follow_weights_1_2_3(seed):
    endpoints = make_endpoints(3, seed, weights=[1, 2, 3])
    assert_shares_follow_weights(Maglev(endpoints, table_size=TABLE_SIZE), endpoints, seed)
