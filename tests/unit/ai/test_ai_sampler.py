"""Reading the data plane's real counter objects into a Reading."""

from __future__ import annotations

from types import SimpleNamespace

from dispa.ai.sampler import read_gateway
from dispa.config.load import build_gateway
from dispa.observe.stats import DataPlaneStats
from dispa.proxy.balancer.p2c_ewma import observe_latency
from dispa.proxy.upstream.pools import UpstreamSet


async def test_endpoint_route_and_region_counters_are_read():
    config = build_gateway(
        {
            "listeners": [{"name": "public", "address": "127.0.0.1:0"}],
            "regions": [{"name": "eu", "latitude": 50, "longitude": 8}],
            "upstreams": [
                {
                    "name": "app",
                    "endpoints": [
                        {"address": "127.0.0.1:1", "region": "eu"},
                        {"address": "127.0.0.1:2"},
                    ],
                }
            ],
            "routes": [{"name": "web", "match": {"path_prefix": "/"}, "upstream": "app"}],
        }
    )
    upstreams = UpstreamSet()
    upstreams.by_name = upstreams.prepare(config.upstreams)
    stats = DataPlaneStats()
    first, second = upstreams.by_name["app"].endpoints
    for status in (200, 200, 503):
        stats.record_endpoint("app", first.address, status >= 500)
        stats.record_request("web", "app", status, 0.004)
        observe_latency(first, 0.004)
    stats.record_request("-", "-", 404, 0.0001)  # no route matched: not demand on a route
    first.active_requests = 2
    reading = read_gateway(SimpleNamespace(stats=stats, upstreams=upstreams), t=5.0)
    counts = reading.endpoints[("app", first.address)]
    assert (counts.requests, counts.errors, counts.active) == (3, 1, 2)
    assert sum(counts.latency) == 3
    assert reading.endpoints[("app", second.address)].requests == 0
    assert reading.regions == {("app", first.address): "eu"}
    assert set(reading.routes) == {"web"}
    assert (reading.routes["web"].requests, reading.routes["web"].errors) == (3, 1)
    assert reading.t == 5.0
