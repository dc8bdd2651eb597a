"""The Consul provider against a fake Consul HTTP API (Consul cannot be installed here).

The fake reproduces the documented wire behaviour the provider depends on:
``GET /v1/health/service/NAME`` with ``passing``, ``index`` and ``wait``; an answer held
until the index moves past the one asked for or the wait runs out; ``X-Consul-Index`` on
every answer; and an index that can go backwards (as after a snapshot restore).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiohttp import web
from support import async_wait_until

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.consul_provider import ConsulPool, ConsulProvider, next_index
from dispa.discovery.provider import DiscoveredEndpoint
from dispa.discovery.watcher import DiscoveryWatcher


def instance(port: int, *, status="passing", tags=(), meta=None, node="10.0.0.9") -> dict:
    return {
        "Node": {"Node": "n1", "Address": node},
        "Service": {
            "ID": f"web-{port}",
            "Service": "web",
            "Address": "127.0.0.1" if node == "10.0.0.9" else "",
            "Port": port,
            "Tags": list(tags),
            "Meta": meta or {},
            "Weights": {"Passing": 1, "Warning": 1},
        },
        "Checks": [{"CheckID": "serfHealth", "Status": "passing"}, {"Status": status}],
    }


class FakeConsul:
    def __init__(self) -> None:
        self.index = 10
        self.entries: dict[str, list[dict]] = {}
        self.changed = asyncio.Condition()
        self.requests: list[dict] = []
        self.token_seen: set[str] = set()
        app = web.Application()
        app.router.add_get("/v1/health/service/{service}", self.health)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        self.url = ""
        self.closing = False

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        async with self.changed:
            self.closing = True  # held queries answer now, so the server can close at once
            self.changed.notify_all()
        await self.runner.cleanup()

    async def set(self, service: str, entries: list[dict], index: int | None = None) -> None:
        async with self.changed:
            self.entries[service] = entries
            self.index = self.index + 1 if index is None else index
            self.changed.notify_all()

    async def health(self, request: web.Request) -> web.Response:
        query = request.query
        self.requests.append(dict(query))
        self.token_seen.add(request.headers.get("X-Consul-Token", ""))
        asked = int(query.get("index", "0"))
        wait = float(query.get("wait", "300s").rstrip("s"))
        if asked > 0:
            # Held until the index moves on (either way), the wait runs out, or we close.
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.changed.wait_for(lambda: self.index != asked or self.closing), wait
                    )
        entries = self.entries.get(request.match_info["service"], [])
        if query.get("passing") in ("true", "1", ""):
            entries = [e for e in entries if all(c["Status"] == "passing" for c in e["Checks"])]
        response = web.json_response(entries, headers={"X-Consul-Index": str(self.index)})
        if self.closing:
            # Close the keep-alive connection, or the client's next query keeps it busy and
            # the shutdown waits for it.
            response.force_close()
        return response


@pytest.fixture
async def consul():
    server = FakeConsul()
    await server.start()
    yield server
    await server.stop()


class Latest:
    def __init__(self) -> None:
        self.merged: dict = {}

    def __call__(self, merged: dict) -> None:
        self.merged = merged


def test_index_handling() -> None:
    assert next_index(0, 12) == 12
    assert next_index(12, 12) == 12
    assert next_index(12, 5) == 0  # backwards: start over
    assert next_index(12, 0) == 0


async def test_blocking_queries_follow_passing_instances_and_weights(consul) -> None:
    await consul.set(
        "web",
        [
            instance(8001, meta={"weight": "40", "region": "eu"}),
            instance(8002, tags=["v2", "weight=5"]),
            instance(8003, status="critical"),
        ],
    )
    latest = Latest()
    provider = ConsulProvider(
        "consul",
        {"web": ConsulPool("web")},
        address=consul.url,
        token="s3cret",
        wait=30.0,
        min_interval=0.05,
    )
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        want = sorted(
            [
                DiscoveredEndpoint("127.0.0.1:8001", 40, "eu"),
                DiscoveredEndpoint("127.0.0.1:8002", 5),
            ]
        )
        await async_wait_until(lambda: latest.merged.get("web@consul") == want, timeout=5)
        await async_wait_until(lambda: len(consul.requests) >= 2, timeout=5)
        # The second query blocks on the index of the first answer, with a wait.
        assert consul.requests[1]["index"] == "11" and consul.requests[1]["wait"] == "30s"
        assert consul.requests[0]["passing"] == "true" and consul.token_seen == {"s3cret"}

        started = time.monotonic()
        await consul.set("web", [instance(8002), instance(8004, node="10.0.0.4")])
        want = sorted([DiscoveredEndpoint("127.0.0.1:8002"), DiscoveredEndpoint("10.0.0.4:8004")])
        await async_wait_until(lambda: latest.merged.get("web@consul") == want, timeout=5)
        assert time.monotonic() - started < 5  # the held query answered on the change

        # A restored Consul's index goes backwards: the provider starts over from 0.
        await consul.set("web", [instance(8005)], index=3)
        await async_wait_until(
            lambda: latest.merged.get("web@consul") == [DiscoveredEndpoint("127.0.0.1:8005")],
            timeout=5,
        )
        asked = [request["index"] for request in consul.requests]
        assert "0" in asked[2:], asked
        await async_wait_until(lambda: consul.requests[-1]["index"] == "3", timeout=5)
    finally:
        await watcher.stop()


async def test_consul_down_keeps_the_last_good_set(consul) -> None:
    await consul.set("web", [instance(8001)])
    latest = Latest()
    provider = ConsulProvider(
        "consul",
        {"web": ConsulPool("web")},
        address=consul.url,
        wait=1.0,
        min_interval=0.05,
        backoff=RetryBackoff(0.05, 0.2),
    )
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        want = [DiscoveredEndpoint("127.0.0.1:8001")]
        await async_wait_until(lambda: latest.merged.get("web@consul") == want, timeout=5)
        await consul.stop()
        await async_wait_until(
            # A query held when the server went away may only end with its own timeout.
            lambda: watcher.statistics()[0]["status"] == "failing",
            timeout=15,
            what="failing",
        )
        assert latest.merged["web@consul"] == want
        assert watcher.statistics()[0]["endpoints"] == 1
    finally:
        await watcher.stop()
