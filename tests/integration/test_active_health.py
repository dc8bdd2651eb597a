"""Active health checks: an endpoint whose /healthz fails stops getting traffic, and
gets it again once it passes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import aiohttp
from conftest import Gateway, Processes, async_wait_until, make_config


async def distribution(gateway: Gateway, count: int) -> Counter:
    served: Counter = Counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200
                served[response.headers["x-upstream"]] += 1
    return served


async def test_endpoint_flipped_down_then_up(processes: Processes, tmp_path: Path) -> None:
    one = processes.demo_upstream("one")
    two = processes.demo_upstream("two")
    config = make_config(
        upstreams=[
            {
                "name": "app",
                "endpoints": [{"address": one.address}, {"address": two.address}],
                "health": {
                    "path": "/healthz",
                    "interval": "200ms",
                    "timeout": "1s",
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 2,
                },
            }
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    gateway = processes.gateway(config, tmp_path)
    assert await distribution(gateway, 10) == Counter(one=5, two=5)

    def state(upstream) -> str:
        return gateway.endpoints("app")[upstream.address]["active_health"]

    one.set_health(False)
    await async_wait_until(lambda: state(one) == "unhealthy", what="'one' to be found unhealthy")
    assert gateway.endpoints("app")[one.address]["healthy"] is False
    assert await distribution(gateway, 20) == Counter(two=20)
    assert gateway.metric("dispa_endpoint_healthy", endpoint=one.address) == 0

    one.set_health(True)
    await async_wait_until(lambda: state(one) == "healthy", what="'one' to be found healthy")
    assert await distribution(gateway, 20) == Counter(one=10, two=10)
    assert gateway.metric("dispa_endpoint_healthy", endpoint=one.address) == 1
    # Going bad is a warning; coming back is news, not a problem: info.
    stderr = gateway.stderr()
    went_bad = f"WARNING dispa.upstream: endpoint {one.address} of upstream app is now unhealthy"
    came_back = f"INFO dispa.upstream: endpoint {one.address} of upstream app is now healthy"
    assert went_bad in stderr, stderr
    assert came_back in stderr, stderr
    assert stderr.count(f"endpoint {one.address}") == 2, stderr  # each flip said once
