from dispa.proxy.balancer.round_robin import RoundRobin
from dispa.proxy.upstream.endpoint import Endpoint


def make_endpoints(*weights: int) -> list[Endpoint]:
    return [Endpoint("pool", f"10.0.0.{index}", 80, weight) for index, weight in enumerate(weights)]


def test_rotates_in_order_ignoring_weights():
    a, b, c = make_endpoints(5, 1, 1)
    balancer = RoundRobin([a, b, c])
    assert [balancer.pick() for _ in range(7)] == [a, b, c, a, b, c, a]


def test_start_offsets_the_rotation():
    a, b, c = make_endpoints(1, 1, 1)
    balancer = RoundRobin([a, b, c], start=4)
    assert [balancer.pick() for _ in range(4)] == [b, c, a, b]


def test_empty_pool_picks_none():
    assert RoundRobin([]).pick() is None
    assert RoundRobin([], start=3).pick() is None


def test_single_endpoint_always_picked():
    (only,) = make_endpoints(1)
    balancer = RoundRobin([only])
    assert {balancer.pick(b"any key") for _ in range(5)} == {only}
