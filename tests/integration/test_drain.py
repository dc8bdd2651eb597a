"""SIGTERM: stop accepting, let requests in flight finish within drain_timeout, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
from conftest import (
    Processes,
    Upstream,
    async_wait_until,
    can_connect,
    connection_closed,
    make_config,
    raw_connection,
    read_response,
)


def drain_config(upstream: Upstream, drain_timeout: str) -> dict:
    return make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream.address}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
        drain_timeout=drain_timeout,
    )


async def test_sigterm_lets_the_request_in_flight_finish(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    gateway = processes.gateway(drain_config(upstream_a, "5s"), tmp_path)
    with raw_connection(gateway.port) as (idle, idle_stream):
        # A keep-alive connection between requests: closed at once by the drain.
        idle.sendall(b"GET / HTTP/1.1\r\nHost: d.test\r\n\r\n")
        assert read_response(idle_stream).status == 200

        async with aiohttp.ClientSession() as session:

            async def slow_get() -> tuple[int, str, str | None]:
                async with session.get(gateway.url("/slow?ms=1500")) as response:
                    body = await response.text()
                    return response.status, body, response.headers.get("connection")

            slow = asyncio.create_task(slow_get())
            await async_wait_until(
                lambda: gateway.endpoints("app")[upstream_a.address]["active_requests"] == 1,
                what="the slow request to be in flight",
            )
            gateway.process.signal(signal.SIGTERM)
            signalled = time.monotonic()
            await async_wait_until(
                lambda: not can_connect(gateway.port), timeout=2.0, what="the listener to close"
            )
            assert gateway.admin_status("/readyz") == 503  # load balancers stop sending
            assert connection_closed(idle, timeout=1.0)
            assert not slow.done()
            status, body, connection = await slow
    assert (status, body) == (200, "slow hello from alpha\n")
    assert connection == "close"
    exit_code = await asyncio.to_thread(gateway.process.wait, 10.0)
    elapsed = time.monotonic() - signalled
    assert exit_code == 0
    # Well before drain_timeout (5s): the drain ends when the last request does.
    assert elapsed < 4.0, f"took {elapsed:.1f}s; the request in flight needed about 1.5s"
    assert "dispa stopped" in gateway.stderr()


async def test_drain_timeout_bounds_the_wait(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    gateway = processes.gateway(drain_config(upstream_a, "1s"), tmp_path)
    async with aiohttp.ClientSession() as session:

        async def too_slow() -> BaseException | int:
            try:
                async with session.get(gateway.url("/slow?ms=8000")) as response:
                    await response.read()
                    return response.status
            except aiohttp.ClientError as error:
                return error

        slow = asyncio.create_task(too_slow())
        await async_wait_until(
            lambda: gateway.endpoints("app")[upstream_a.address]["active_requests"] == 1,
            what="the slow request to be in flight",
        )
        gateway.process.signal(signal.SIGTERM)
        signalled = time.monotonic()
        exit_code = await asyncio.to_thread(gateway.process.wait, 10.0)
        elapsed = time.monotonic() - signalled
        outcome = await asyncio.wait_for(slow, 5.0)
    assert exit_code == 0
    assert 0.9 <= elapsed < 3.0, f"exited {elapsed:.1f}s after SIGTERM with drain_timeout 1s"
    assert isinstance(outcome, aiohttp.ClientError)  # cut off, not answered
