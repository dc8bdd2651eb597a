"""Passive outlier detection: an endpoint failing real requests is taken out of rotation."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from conftest import Processes, Upstream, free_port, make_config, wait_until


async def test_endpoint_answering_500s_is_ejected(
    processes: Processes, tmp_path: Path, upstream_b: Upstream
) -> None:
    broken = processes.faulty_upstream("broken", always_status=500)
    config = make_config(
        upstreams=[
            {
                "name": "app",
                "endpoints": [{"address": broken.address}, {"address": upstream_b.address}],
                "outlier": {"consecutive_5xx": 3, "base_ejection": "30s"},
            }
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    gateway = processes.gateway(config, tmp_path)
    served = []
    async with aiohttp.ClientSession() as session:
        for _ in range(30):
            async with session.get(gateway.url("/")) as response:
                served.append((response.status, response.headers["x-upstream"]))
    # 500 is not retried: exactly three reach the client, then the endpoint is out.
    assert served.count((500, "broken")) == 3
    assert served.count((200, "beta")) == 27
    assert all(answer == (200, "beta") for answer in served[-20:])
    endpoints = gateway.endpoints("app")
    assert endpoints[broken.address]["ejected"] is True
    assert endpoints[broken.address]["healthy"] is False
    assert endpoints[upstream_b.address]["ejected"] is False
    assert gateway.metric("dispa_endpoint_ejected", endpoint=broken.address) == 1
    assert gateway.metric("dispa_endpoint_healthy", endpoint=upstream_b.address) == 1


async def test_endpoint_refusing_connections_is_ejected(
    processes: Processes, tmp_path: Path, upstream_b: Upstream
) -> None:
    refused = f"127.0.0.1:{free_port()}"
    config = make_config(
        upstreams=[
            {
                "name": "app",
                "endpoints": [{"address": refused}, {"address": upstream_b.address}],
                "outlier": {"consecutive_failures": 2, "base_ejection": "30s"},
            }
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    gateway = processes.gateway(config, tmp_path)
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200  # retried on the good endpoint
    retried = gateway.metric("dispa_retries_total", upstream="app")
    assert gateway.endpoints("app")[refused]["ejected"] is True
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200
    # Once ejected, the refusing endpoint gets no tries, so nothing needs a retry.
    assert retried == 2
    assert gateway.metric("dispa_retries_total", upstream="app") == retried


async def test_ejection_is_a_warning_and_the_return_to_service_is_info(
    processes: Processes, tmp_path: Path, upstream_b: Upstream
) -> None:
    refused = f"127.0.0.1:{free_port()}"
    config = make_config(
        upstreams=[
            {
                "name": "app",
                "endpoints": [{"address": refused}, {"address": upstream_b.address}],
                "outlier": {"consecutive_failures": 1, "base_ejection": "1s"},
            }
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    gateway = processes.gateway(config, tmp_path)
    async with aiohttp.ClientSession() as session:
        for _ in range(4):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200
    assert gateway.endpoints("app")[refused]["ejected"] is True
    came_back = f"INFO dispa.upstream: endpoint {refused} of upstream app returns to service"
    wait_until(lambda: came_back in gateway.stderr(), timeout=10.0, what="the return to service")
    stderr = gateway.stderr()
    assert f"WARNING dispa.upstream: endpoint {refused} of upstream app ejected" in stderr
    assert f"WARNING dispa.upstream: endpoint {refused} of upstream app returns" not in stderr
