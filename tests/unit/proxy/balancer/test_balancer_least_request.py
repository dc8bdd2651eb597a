import random
from collections import Counter

from dispa.proxy.balancer.least_request import LeastRequest
from dispa.proxy.upstream.endpoint import Endpoint


def make_endpoints(*active_requests: int) -> list[Endpoint]:
    endpoints = []
    for index, active in enumerate(active_requests):
        endpoint = Endpoint("pool", f"10.0.0.{index}", 80)
        endpoint.active_requests = active
        endpoints.append(endpoint)
    return endpoints


def test_of_two_endpoints_the_less_loaded_always_wins():
    busy, idle = make_endpoints(5, 1)
    balancer = LeastRequest([busy, idle], rng=random.Random(1))
    assert {balancer.pick() for _ in range(100)} == {idle}


def test_the_most_loaded_endpoint_is_never_picked():
    # It loses every draw it is in, since the two sampled endpoints are always distinct.
    endpoints = make_endpoints(0, 1, 2, 3, 9)
    balancer = LeastRequest(endpoints, rng=random.Random(2))
    picks = Counter(balancer.pick() for _ in range(2000))
    assert endpoints[-1] not in picks
    assert picks.most_common(1)[0][0] is endpoints[0]


def test_ties_are_spread_evenly():
    endpoints = make_endpoints(3, 3, 3, 3)
    balancer = LeastRequest(endpoints, rng=random.Random(3))
    picks = Counter(balancer.pick() for _ in range(8000))
    # 2000 expected each, standard deviation about 39.
    assert all(1800 <= picks[endpoint] <= 2200 for endpoint in endpoints)


def test_load_is_compared_per_unit_of_weight():
    heavy, light = make_endpoints(2, 1)
    heavy.weight = 2
    # heavy: (2 + 1) / 2 = 1.5 requests per weight; light: (1 + 1) / 1 = 2.
    balancer = LeastRequest([heavy, light], rng=random.Random(4))
    assert {balancer.pick() for _ in range(100)} == {heavy}


def test_empty_pool_picks_none():
    assert LeastRequest([], rng=random.Random(1)).pick() is None


def test_single_endpoint_always_picked():
    (only,) = make_endpoints(100)
    balancer = LeastRequest([only], rng=random.Random(1))
    assert {balancer.pick() for _ in range(10)} == {only}
