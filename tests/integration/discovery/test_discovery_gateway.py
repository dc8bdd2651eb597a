"""Discovery end to end through ``dispa run``, once for each provider kind.

A real gateway process follows a real source (a file, dnsmasq, etcd) or a wire-faithful
fake (Consul, Kubernetes) and real upstream processes serve the traffic. For each kind:
endpoints appear, change weight, disappear; the source going away keeps the last good
set (and says so on GET /api/v1/providers and in the metrics); and a rolling replacement
of every endpoint under a steady stream of requests fails none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import HOST, Processes, make_config

from discovery.sources import NEEDS, SOURCES

PROVIDER = "src"
# Bounds of the traffic loop: requests and seconds, whichever comes first.
MAX_REQUESTS = 20_000
MAX_SECONDS = 60.0


class Admin:
    """The gateway's admin API, read without blocking the loop (the fakes share it)."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://{HOST}:{port}"

    async def json(self, path: str) -> dict:
        async with self.session.get(self.base + path) as response:
            assert response.status == 200, (path, response.status)
            return await response.json()

    async def status(self, path: str) -> int:
        async with self.session.get(self.base + path) as response:
            return response.status

    async def endpoints(self) -> dict[str, int]:
        document = await self.json("/api/v1/upstreams")
        (web,) = [u for u in document["upstreams"] if u["name"] == "web"]
        return {endpoint["address"]: endpoint["weight"] for endpoint in web["endpoints"]}

    async def provider(self) -> dict:
        (entry,) = (await self.json("/api/v1/providers"))["providers"]
        return entry

    async def metric(self, name: str) -> float | None:
        async with self.session.get(self.base + "/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


async def wait_for(check, what: str, timeout: float = 15.0):
    """Poll an async check until it returns something truthy (bounded in time)."""
    result: list = []

    async def once() -> None:
        result[:] = [await check()]

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(aiohttp.ClientError, AssertionError, ValueError):
            await once()
            if result and result[0]:
                return result[0]
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.1)


class Traffic:
    """GET / in a bounded loop on two keep-alive clients; every failure is kept."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.served: dict[str, int] = {}
        self.failures: list[str] = []
        self.sent = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(2)]

    async def _client(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self._stop.is_set() and self.sent < MAX_REQUESTS and time.monotonic() < deadline:
            self.sent += 1
            try:
                async with self.session.get(self.url) as response:
                    body = await response.text()
                    if response.status != 200:
                        self.failures.append(f"{response.status} {body.strip()}")
                    else:
                        name = body.strip().rpartition(" ")[2]
                        self.served[name] = self.served.get(name, 0) + 1
            except aiohttp.ClientError as error:
                self.failures.append(repr(error))
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def body_of(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return (await response.text()).strip() if response.status == 200 else ""


@pytest.mark.parametrize("kind", list(SOURCES))
async def test_endpoints_follow_the_source_and_a_rolling_replacement_fails_nothing(
    kind: str, processes: Processes, tmp_path: Path
) -> None:
    if kind in NEEDS and not NEEDS[kind].exists():
        pytest.skip(f"needs {NEEDS[kind]}")
    source = SOURCES[kind](tmp_path)
    await source.start()
    a, b = processes.demo_upstream("a"), processes.demo_upstream("b")
    w = (lambda weight: weight) if source.weights else (lambda weight: 1)
    try:
        await source.publish({a.address: 1})
        config = make_config(
            [{"name": "web", "discovery": f"web@{PROVIDER}", "lb": "weighted_round_robin"}],
            [{"upstream": "web"}],
            discovery={"throttle": 0.1, "providers": [source.provider(PROVIDER)]},
        )
        gateway = processes.gateway(config, tmp_path / "gateway", ready=False)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            admin = Admin(session, gateway.admin_port)
            url = gateway.url("/")

            # Appear.
            await wait_for(lambda: _equal(admin, {a.address: 1}), "the first endpoint", 30.0)
            assert await body_of(session, url) == "hello from a"
            # Appear, with weights.
            await source.publish({a.address: 1, b.address: 5})
            await wait_for(lambda: _equal(admin, {a.address: 1, b.address: w(5)}), "b, weight 5")
            # Change weight.
            await source.publish({a.address: 3, b.address: 5})
            await wait_for(lambda: _equal(admin, {a.address: w(3), b.address: w(5)}), "a, weight 3")
            # Disappear.
            await source.publish({b.address: 5})
            await wait_for(lambda: _equal(admin, {b.address: w(5)}), "a gone")
            assert {await body_of(session, url) for _ in range(4)} == {"hello from b"}
            a.process.stop()  # out of the pool first, then stopped

            # The source goes away: the last good set stays, and the state says why.
            await source.go_away()
            entry = await wait_for(_failing(admin), "the provider to report failing")
            assert entry["last_error"] and entry["retry_in"] is not None
            assert entry["pools"] == {f"web@{PROVIDER}": 1}
            assert await admin.metric("dispa_discovery_provider_up") == 0.0
            assert await admin.metric("dispa_discovery_failures_total") >= 1
            assert await admin.endpoints() == {b.address: w(5)}
            assert await body_of(session, url) == "hello from b"
            await source.come_back({b.address: 5})
            await wait_for(_state_is(admin, "ok"), "the provider to recover")
            assert await admin.metric("dispa_discovery_provider_up") == 1.0

            # Rolling replacement under traffic: c and d join, b leaves, then b stops.
            c, d = processes.demo_upstream("c"), processes.demo_upstream("d")
            traffic = Traffic(session, url)
            traffic.start()
            try:
                await source.publish({b.address: 5, c.address: 1, d.address: 1})
                await wait_for(lambda: _has(admin, {c.address, d.address}), "c and d to join")
                await wait_for(lambda: _served(traffic, {"c", "d"}), "c and d to take requests")
                await source.publish({c.address: 1, d.address: 1})
                await wait_for(lambda: _equal(admin, {c.address: 1, d.address: 1}), "b to leave")
                await asyncio.sleep(0.5)  # requests already sent to b finish there
                b.process.stop()
                before = traffic.sent
                await wait_for(lambda: _sent_since(traffic, before, 200), "traffic after b")
            finally:
                await traffic.stop()
            assert traffic.failures == [], traffic.failures[:5]
            assert traffic.sent >= 200
            assert traffic.served.get("c", 0) > 0 and traffic.served.get("d", 0) > 0
            updates = await admin.metric("dispa_discovery_updates_total")
            assert updates is not None and updates >= 6
    finally:
        await source.stop()


async def _equal(admin: Admin, wanted: dict[str, int]) -> bool:
    return await admin.endpoints() == wanted


async def _has(admin: Admin, addresses: set[str]) -> bool:
    return addresses <= set(await admin.endpoints())


def _failing(admin: Admin):
    async def check():
        entry = await admin.provider()
        return entry if entry["state"] == "failing" else None

    return check


def _state_is(admin: Admin, state: str):
    async def check() -> bool:
        return (await admin.provider())["state"] == state

    return check


async def _served(traffic: Traffic, names: set[str]) -> bool:
    return all(traffic.served.get(name, 0) > 0 for name in names)


async def _sent_since(traffic: Traffic, before: int, count: int) -> bool:
    return traffic.sent - before >= count


async def test_with_workers_each_worker_follows_and_the_supervisor_reports(
    processes: Processes, tmp_path: Path
) -> None:
    source = SOURCES["file"](tmp_path)
    a = processes.demo_upstream("a")
    await source.publish({a.address: 4})
    config = make_config(
        [{"name": "web", "discovery": f"web@{PROVIDER}"}],
        [{"upstream": "web"}],
        discovery={"throttle": 0.1, "providers": [source.provider(PROVIDER)]},
    )
    gateway = processes.gateway(config, tmp_path / "gateway", args=("--workers", "2"), ready=False)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        admin = Admin(session, gateway.admin_port)
        await wait_for(lambda: _equal(admin, {a.address: 4}), "the endpoint in the workers", 30.0)
        document = await admin.json("/api/v1/providers")
        assert document["role"] == "workers"
        assert document["providers"][0]["pools"] == {f"web@{PROVIDER}": 1}
        assert await admin.metric("dispa_discovery_endpoints") == 1.0
        # Traffic goes to the discovered endpoint.
        assert {await body_of(session, gateway.url("/")) for _ in range(6)} == {"hello from a"}
