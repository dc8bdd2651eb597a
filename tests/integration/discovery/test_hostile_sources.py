"""Consul and the Kubernetes API as hostile peers: answers nested past the parser's limit,
larger than any real answer, or a watch line without end. Each is a failure of the
provider naming the answer (the last good view kept), not a RecursionError and not memory
without limit. Real HTTP servers on loopback, answering whatever bytes the test sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from aiohttp import web
from support import async_wait_until

from discovery.test_kubernetes_provider import PATH, TOKEN, endpoint_slice, kubeconfig
from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.consul_provider import ConsulPool, ConsulProvider
from dispa.discovery.documents import MAX_DOCUMENT_BYTES
from dispa.discovery.kubernetes_auth import from_kubeconfig
from dispa.discovery.kubernetes_provider import KubernetesPool, KubernetesProvider
from dispa.discovery.provider import DiscoveredEndpoint
from dispa.discovery.watcher import DiscoveryWatcher

DEEP = b"[" * 100_000 + b"]" * 100_000
GOOD_CONSUL = json.dumps(
    [
        {
            "Node": {"Address": "10.0.0.9"},
            "Service": {"Address": "127.0.0.1", "Port": 8001},
            "Checks": [{"Status": "passing"}],
        }
    ]
).encode()


class RawServer:
    """An HTTP server whose every answer the test sets: ``(body, announce_length)``, or a
    streaming ``handler``."""

    def __init__(self, route: str) -> None:
        self.body = b"[]"
        self.announce_length = True
        self.handler = None
        app = web.Application()
        app.router.add_get(route, self.answer)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def answer(self, request: web.Request) -> web.StreamResponse:
        if self.handler is not None:
            return await self.handler(request)
        await asyncio.sleep(0.02)  # a blocking query that answers at once would spin
        if self.announce_length:
            return web.Response(
                body=self.body, content_type="application/json", headers={"X-Consul-Index": "5"}
            )
        response = web.StreamResponse(headers={"X-Consul-Index": "5"})
        response.content_type = "application/json"
        await response.prepare(request)  # chunked: no length announced
        for start in range(0, len(self.body), 1 << 20):
            await response.write(self.body[start : start + (1 << 20)])
        return response


@pytest.fixture
async def consul():
    server = RawServer("/v1/health/service/{service}")
    await server.start()
    yield server
    await server.runner.cleanup()


class Latest:
    def __init__(self) -> None:
        self.merged: dict = {}

    def __call__(self, merged: dict) -> None:
        self.merged = merged


async def wait_failing_with(watcher: DiscoveryWatcher, *said: str, unsaid: str = "\0") -> str:
    def failing() -> bool:
        state = watcher.statistics()[0]
        error = state["last_error"] or ""
        return (
            state["status"] == "failing" and all(s in error for s in said) and unsaid not in error
        )

    await async_wait_until(failing, timeout=10, what=f"failing with {said}")
    return watcher.statistics()[0]["last_error"]


async def test_consul_answers_past_the_bounds_fail_the_provider_naming_the_answer(consul) -> None:
    consul.body = GOOD_CONSUL
    latest = Latest()
    provider = ConsulProvider(
        "consul",
        {"web": ConsulPool("web")},
        address=consul.url,
        wait=1,
        min_interval=0.05,
        backoff=RetryBackoff(0.05, 0.1),
    )
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        want = [DiscoveredEndpoint("127.0.0.1:8001")]
        await async_wait_until(lambda: latest.merged.get("web@consul") == want, timeout=5)

        consul.body = DEEP
        error = await wait_failing_with(watcher, "Consul's answer for pool web", "nested too deep")
        assert "RecursionError" not in error
        assert latest.merged["web@consul"] == want  # the last good view stays

        consul.body = b"[" + b" " * MAX_DOCUMENT_BYTES + b"]"
        await wait_failing_with(watcher, "larger than 16 MiB", "announced")
        consul.announce_length = False  # the same, chunked: the read stops at the cap
        await wait_failing_with(watcher, "larger than 16 MiB", unsaid="announced")
        assert latest.merged["web@consul"] == want

        consul.body, consul.announce_length = GOOD_CONSUL, True
        await async_wait_until(lambda: watcher.statistics()[0]["status"] == "ok", timeout=5)
    finally:
        await watcher.stop()


@pytest.fixture
async def api():
    server = RawServer(PATH.format(namespace="shop"))
    await server.start()
    yield server
    await server.runner.cleanup()


async def test_kubernetes_watch_lines_past_the_bounds_fail_naming_the_watch(api, tmp_path) -> None:
    listed = {
        "metadata": {"resourceVersion": "100"},
        "items": [endpoint_slice("web-a", {"10.1.0.1": True}, {"http": 8080})],
    }
    watch_line: list[bytes] = [DEEP + b"\n"]
    list_body: list[bytes | None] = [None]

    async def endpointslices(request: web.Request) -> web.StreamResponse:
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"
        if request.query.get("watch") != "1":
            if list_body[0] is not None:
                return web.Response(body=list_body[0], content_type="application/json")
            return web.json_response(listed)
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(watch_line[0]), 1 << 20):
                await response.write(watch_line[0][start : start + (1 << 20)])
            await asyncio.sleep(5)  # then hold the stream, as a watch does
        return response

    api.handler = endpointslices
    latest = Latest()
    provider = KubernetesProvider(
        "k8s",
        {"web": KubernetesPool("web", port="http")},
        from_kubeconfig(kubeconfig(tmp_path, api.url)),
        backoff=RetryBackoff(0.05, 0.1),
    )
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        error = await wait_failing_with(
            watcher, "the EndpointSlice watch of pool web", "nested too deep"
        )
        assert "RecursionError" not in error
        assert latest.merged["web@k8s"] == [DiscoveredEndpoint("10.1.0.1:8080")]

        watch_line[0] = b" " * (MAX_DOCUMENT_BYTES + (1 << 20))  # a line without end
        await wait_failing_with(watcher, "the EndpointSlice watch of pool web", "longer than")

        list_body[0] = DEEP  # the list itself nested past the parser
        await wait_failing_with(watcher, "the EndpointSlice list of pool web", "nested too deep")
        assert latest.merged["web@k8s"] == [DiscoveredEndpoint("10.1.0.1:8080")]
    finally:
        await watcher.stop()
