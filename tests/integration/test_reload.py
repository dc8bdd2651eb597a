"""Reload on SIGHUP and on file change, under load, without failing a request; a bad file
is refused whole and the config in force keeps serving."""

from __future__ import annotations

import asyncio
import copy
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import aiohttp
from conftest import (
    Processes,
    Upstream,
    async_wait_until,
    free_port,
    make_config,
    wait_until,
)

CONNECTIONS = 8
REQUESTS = 2000


def routed_to(config: dict, upstream: str) -> dict:
    changed = copy.deepcopy(config)
    changed["routes"][0]["upstream"] = upstream
    return changed


def two_upstream_config(first: Upstream, second: Upstream) -> dict:
    return make_config(
        upstreams=[
            {"name": "old", "endpoints": [{"address": first.address}]},
            {"name": "new", "endpoints": [{"address": second.address}]},
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "old"}],
    )


async def load(url: str) -> list[tuple[float, float, int, str]]:
    """REQUESTS requests over CONNECTIONS keep-alive connections, about 5 s in all:
    (sent at, answered at, status, x-upstream) for each."""
    results: list[tuple[float, float, int, str]] = []
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(number: int) -> None:
            for _ in range(REQUESTS // CONNECTIONS):
                sent = time.monotonic()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        answer = (response.status, response.headers.get("x-upstream", ""))
                except aiohttp.ClientError as error:
                    answer = (0, repr(error))
                results.append((sent, time.monotonic(), *answer))
                await asyncio.sleep(0.015)

        await asyncio.gather(*(client(n) for n in range(CONNECTIONS)))
    return results


async def test_reload_under_load_fails_no_request(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, upstream_b: Upstream
) -> None:
    config = two_upstream_config(upstream_a, upstream_b)
    gateway = processes.gateway(config, tmp_path)
    revision = gateway.revision()
    traffic = asyncio.create_task(load(gateway.url("/")))
    await asyncio.sleep(1.5)
    # Change the route and add a listener: the file watcher and SIGHUP both see it.
    extra_port = free_port()
    changed = routed_to(config, "new")
    changed["listeners"].append({"name": "extra", "address": f"127.0.0.1:{extra_port}"})
    gateway.reload(changed)
    reloaded_at = time.monotonic()
    results = await traffic

    failures = [r for r in results if r[2] != 200]
    assert len(results) == REQUESTS
    assert failures == []
    served = Counter(upstream for *_, upstream in results)
    assert served["alpha"] > 100 and served["beta"] > 100, served
    # Once one answer came from the new snapshot, every request sent later uses it.
    switched = min(answered for _, answered, _, upstream in results if upstream == "beta")
    assert switched - reloaded_at < 1.5
    late = [upstream for sent, _, _, upstream in results if sent > switched]
    assert late and set(late) == {"beta"}
    # Applied once: the second trigger found an equal config and changed nothing.
    assert gateway.revision() == revision + 1
    assert gateway.admin_json("/api/v1/config")["config"]["routes"][0]["upstream"] == "new"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{extra_port}/") as response:
            assert response.headers["x-upstream"] == "beta"
        async with session.get(gateway.url("/")) as response:
            assert response.headers["x-upstream"] == "beta"


async def test_invalid_file_is_refused_and_the_old_config_serves(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, upstream_b: Upstream
) -> None:
    config = two_upstream_config(upstream_a, upstream_b)
    gateway = processes.gateway(config, tmp_path)
    revision = gateway.revision()

    gateway.reload(routed_to(config, "nope"))
    await async_wait_until(
        lambda: "routes[0].upstream: unknown upstream 'nope'" in gateway.stderr(),
        what="the refusal to be logged",
    )
    assert "refused, the previous config keeps serving" in gateway.stderr()
    assert gateway.revision() == revision
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200
                assert response.headers["x-upstream"] == "alpha"

    # Not even YAML: refused the same way.
    gateway.reload("listeners: [\n")
    await async_wait_until(
        lambda: "not valid YAML" in gateway.stderr(), what="the YAML error to be logged"
    )
    assert gateway.revision() == revision

    # A good file afterwards is taken.
    gateway.reload(routed_to(config, "new"))
    await async_wait_until(lambda: gateway.revision() == revision + 1, what="the good reload")
    async with aiohttp.ClientSession() as session, session.get(gateway.url("/")) as response:
        assert response.headers["x-upstream"] == "beta"


def test_listener_that_cannot_bind_is_refused_whole(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, upstream_b: Upstream
) -> None:
    config = two_upstream_config(upstream_a, upstream_b)
    gateway = processes.gateway(config, tmp_path)
    revision = gateway.revision()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        changed = routed_to(config, "new")
        changed["listeners"].append({"name": "clash", "address": f"127.0.0.1:{port}"})
        gateway.write_config(changed)
        gateway.process.signal(signal.SIGHUP)
        wait_until(
            lambda: f"cannot listen on 127.0.0.1:{port}" in gateway.stderr(),
            what="the bind failure to be logged",
        )
        time.sleep(0.3)  # the port stays taken while a second trigger may still try
        # Nothing of that config was applied, the route change included.
        assert gateway.revision() == revision
        assert gateway.admin_json("/api/v1/config")["config"]["routes"][0]["upstream"] == "old"


async def test_request_in_flight_finishes_on_the_snapshot_it_started_with(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, upstream_b: Upstream
) -> None:
    config = two_upstream_config(upstream_a, upstream_b)
    gateway = processes.gateway(config, tmp_path)
    revision = gateway.revision()
    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> tuple[int, str]:
            async with session.get(gateway.url(path)) as response:
                return response.status, await response.text()

        slow = asyncio.create_task(get("/slow?ms=1500"))
        await async_wait_until(
            lambda: gateway.endpoints("old")[upstream_a.address]["active_requests"] == 1,
            what="the slow request to be in flight",
        )
        # The new config drops the upstream the slow request is using.
        changed = routed_to(config, "new")
        del changed["upstreams"][0]
        gateway.reload(changed)
        await async_wait_until(lambda: gateway.revision() == revision + 1, what="the reload")
        assert not slow.done()
        assert await get("/") == (200, "hello from beta\n")
        assert await slow == (200, "slow hello from alpha\n")
