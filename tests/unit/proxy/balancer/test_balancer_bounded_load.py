import random
from collections import Counter
from fractions import Fraction
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy.balancer import maglev as maglev_module
from dispa.proxy.balancer.bounded_load import LoadBound
from dispa.proxy.balancer.maglev import Maglev
from dispa.proxy.balancer.ring_hash import RingHash
from dispa.proxy.upstream.endpoint import Endpoint

TABLE_SIZE = 8191


def make_endpoints(weights: list[int], active: list[int] | None = None) -> list[Endpoint]:
    endpoints = []
    for index, weight in enumerate(weights):
        endpoint = Endpoint("pool", f"10.0.{index}.1", 8080, weight)
        endpoint.active_requests = active[index] if active else 0
        endpoints.append(endpoint)
    return endpoints


def capacity(endpoint: Endpoint, endpoints: list[Endpoint], factor: str) -> int:
    """The bound from the paper, in exact arithmetic: ceil(c * (T + 1) * w / W)."""
    total_active = sum(other.active_requests for other in endpoints)
    total_weight = sum(other.weight for other in endpoints)
    return ceil(Fraction(factor) * (total_active + 1) * endpoint.weight / total_weight)


def has_room(endpoint: Endpoint, endpoints: list[Endpoint], factor: str) -> bool:
    return endpoint.active_requests + 1 <= capacity(endpoint, endpoints, factor)


def build(policy: str, endpoints: list[Endpoint], factor: str):
    if policy == "ring_hash":
        return RingHash(endpoints, bounded_load=float(factor), rng=random.Random(0))
    return Maglev(
        endpoints, table_size=TABLE_SIZE, bounded_load=float(factor), rng=random.Random(0)
    )


def test_factor_below_one_is_rejected():
    with pytest.raises(ValueError, match=r"bounded_load must be >= 1\.0"):
        LoadBound(make_endpoints([1, 1]), 0.9)


@settings(max_examples=30, deadline=None)
@given(
    policy=st.sampled_from(["ring_hash", "maglev"]),
    factor=st.sampled_from(["1.0", "1.1", "1.25", "1.5", "2.0"]),
    loads=st.lists(
        st.tuples(st.integers(min_value=1, max_value=3), st.integers(min_value=0, max_value=40)),
        min_size=3,
        max_size=20,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_no_endpoint_over_the_bound_is_picked_while_another_has_room(policy, factor, loads, seed):
    endpoints = make_endpoints([weight for weight, _ in loads], [active for _, active in loads])
    balancer = build(policy, endpoints, factor)
    anyone_has_room = any(has_room(endpoint, endpoints, factor) for endpoint in endpoints)
    assert anyone_has_room  # the paper's guarantee, since factor >= 1
    rng = random.Random(seed)
    for _ in range(100):
        assert has_room(balancer.pick(rng.randbytes(8)), endpoints, factor)
    assert has_room(balancer.pick(), endpoints, factor)


@pytest.mark.parametrize("policy", ["ring_hash", "maglev"])
def test_hot_key_spreads_once_its_endpoint_is_full(policy):
    # 200 requests for one key arrive and none has finished yet.
    endpoints = make_endpoints([1] * 5)
    balancer = build(policy, endpoints, "1.25")
    for _ in range(200):
        chosen = balancer.pick(b"hot key")
        assert has_room(chosen, endpoints, "1.25")
        chosen.active_requests += 1
    loads = sorted(endpoint.active_requests for endpoint in endpoints)
    # No endpoint above ceil(1.25 * 200 / 5) = 50.
    assert loads[-1] <= 50
    assert sum(loads) == 200


@pytest.mark.parametrize("policy", ["ring_hash", "maglev"])
def test_without_a_bound_a_hot_key_stays_on_one_endpoint(policy):
    endpoints = make_endpoints([1] * 5)
    balancer = (
        RingHash(endpoints) if policy == "ring_hash" else Maglev(endpoints, table_size=TABLE_SIZE)
    )
    assert len(Counter(balancer.pick(b"hot key") for _ in range(50))) == 1


@pytest.mark.parametrize("policy", ["ring_hash", "maglev"])
def test_balanced_load_keeps_every_key_on_its_endpoint(policy):
    endpoints = make_endpoints([1] * 6, active=[4] * 6)
    plain = (
        RingHash(endpoints) if policy == "ring_hash" else Maglev(endpoints, table_size=TABLE_SIZE)
    )
    bounded = build(policy, endpoints, "1.25")
    keys = [b"key-%d" % index for index in range(300)]
    assert [bounded.pick(key) for key in keys] == [plain.pick(key) for key in keys]


def test_ring_overflow_goes_clockwise_to_the_next_endpoint():
    # Skipping a full endpoint on the ring is exactly what a ring without it would pick.
    endpoints = make_endpoints([1] * 6)
    bounded = RingHash(endpoints, bounded_load=1.25)
    for index in range(100):
        key = b"key-%d" % index
        first = bounded.pick(key)
        first.active_requests = 10
        without_first = RingHash([endpoint for endpoint in endpoints if endpoint is not first])
        assert bounded.pick(key) is without_first.pick(key)
        first.active_requests = 0


def test_maglev_overflow_is_stable_per_key():
    endpoints = make_endpoints([1] * 6)
    bounded = Maglev(endpoints, table_size=TABLE_SIZE, bounded_load=1.25)
    first = bounded.pick(b"key")
    first.active_requests = 10
    second_choices = {bounded.pick(b"key") for _ in range(20)}
    assert len(second_choices) == 1
    assert first not in second_choices


def test_maglev_takes_the_roomiest_endpoint_when_probes_run_out(monkeypatch):
    monkeypatch.setattr(maglev_module, "PROBES_PER_ENDPOINT", 0)
    endpoints = make_endpoints([1] * 4, active=[0, 0, 0, 0])
    bounded = Maglev(endpoints, table_size=TABLE_SIZE, bounded_load=1.0)
    first = bounded.pick(b"key")
    first.active_requests = 6
    others = [endpoint for endpoint in endpoints if endpoint is not first]
    for endpoint, active in zip(others, [2, 0, 1], strict=True):
        endpoint.active_requests = active
    assert bounded.pick(b"key") is others[1]
