"""The Kubernetes provider against a fake API server (Kubernetes cannot be installed here).

The fake reproduces the documented wire behaviour of EndpointSlice list and watch: a list
with ``metadata.resourceVersion``; ``watch=1&resourceVersion=RV`` streaming one JSON event per
line (ADDED, MODIFIED, DELETED, BOOKMARK with ``allowWatchBookmarks``); a version older than
the kept history answered with 410 Gone (as the HTTP status, or as an ERROR event in the
stream); bearer-token authentication. The provider reaches it through a kubeconfig.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from support import async_wait_until

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.kubernetes_auth import from_kubeconfig, in_cluster
from dispa.discovery.kubernetes_provider import KubernetesPool, KubernetesProvider
from dispa.discovery.provider import DiscoveredEndpoint
from dispa.discovery.watcher import DiscoveryWatcher

TOKEN = "token-of-the-gateway"
PATH = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


def endpoint_slice(name: str, addresses: dict[str, bool | None], ports: dict[str, int]) -> dict:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [
            {"name": port, "port": number, "protocol": "TCP"} for port, number in ports.items()
        ],
        "endpoints": [
            {"addresses": [address], **({} if ready is None else {"conditions": {"ready": ready}})}
            for address, ready in addresses.items()
        ],
    }


class FakeApiServer:
    def __init__(self) -> None:
        self.version = 100
        self.slices: dict[str, dict] = {}
        self.history: list[tuple[int, str, dict]] = []  # (version, type, object)
        self.oldest = 100  # versions before this are compacted away: 410 Gone
        self.streams: list[asyncio.Queue] = []
        self.lists = 0
        self.watch_versions: list[str] = []
        app = web.Application()
        app.router.add_get(PATH.format(namespace="shop"), self.endpointslices)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        for queue in self.streams:
            queue.put_nowait(None)
        await self.runner.cleanup()

    # -- what the test does to the cluster --------------------------------------------

    def _event(self, event_type: str, obj: dict) -> None:
        self.version += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.history.append((self.version, event_type, obj))
        for queue in self.streams:
            queue.put_nowait((event_type, obj))

    def apply(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        event_type = "MODIFIED" if name in self.slices else "ADDED"
        self.slices[name] = obj
        self._event(event_type, obj)

    def delete(self, name: str) -> None:
        self._event("DELETED", self.slices.pop(name))

    def bookmark(self) -> None:
        self.version += 1
        for queue in self.streams:
            queue.put_nowait(("BOOKMARK", {"metadata": {"resourceVersion": str(self.version)}}))

    def compact_and_expire(self, *, in_stream: bool) -> None:
        """Forget all history; open watches end with 410 (an ERROR event, or just end and
        the next watch request gets HTTP 410)."""
        self.version += 1  # a write no watcher saw, compacted away with the rest
        self.oldest = self.version + 1
        self.history.clear()
        for queue in self.streams:
            queue.put_nowait(("ERROR", {"kind": "Status", "code": 410}) if in_stream else None)

    # -- the API ----------------------------------------------------------------------

    async def endpointslices(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        assert request.query["labelSelector"] == "kubernetes.io/service-name=web"
        if request.query.get("watch") != "1":
            self.lists += 1
            return web.json_response(
                {
                    "kind": "EndpointSliceList",
                    "metadata": {"resourceVersion": str(self.version)},
                    "items": list(self.slices.values()),
                }
            )
        assert request.query["allowWatchBookmarks"] == "true"
        since = int(request.query["resourceVersion"])
        self.watch_versions.append(request.query["resourceVersion"])
        if since < self.oldest - 1:
            return web.json_response({"kind": "Status", "code": 410, "reason": "Gone"}, status=410)
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        for version, event_type, obj in self.history:
            if version > since:
                queue.put_nowait((event_type, obj))
        self.streams.append(queue)
        try:
            while (item := await queue.get()) is not None:
                event_type, obj = item
                await response.write(
                    json.dumps({"type": event_type, "object": obj}).encode() + b"\n"
                )
                if event_type == "ERROR":
                    break
        finally:
            self.streams.remove(queue)
        return response


@pytest.fixture
async def api():
    server = FakeApiServer()
    await server.start()
    yield server
    with contextlib.suppress(Exception):
        await server.stop()


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "contexts": [
            {"name": "test", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}
        ],
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Latest:
    def __init__(self) -> None:
        self.merged: dict = {}

    def __call__(self, merged: dict) -> None:
        self.merged = merged


def at(*addresses: str) -> list[DiscoveredEndpoint]:
    return sorted(DiscoveredEndpoint(address) for address in addresses)


async def test_list_then_watch_with_bookmarks_and_410_relists(api, tmp_path: Path) -> None:
    api.apply(
        endpoint_slice("web-a", {"10.1.0.1": True, "10.1.0.2": False}, {"http": 8080, "m": 9})
    )
    api.apply(endpoint_slice("web-b", {"10.1.0.3": None}, {"http": 8081}))
    latest = Latest()
    access = from_kubeconfig(kubeconfig(tmp_path, api.url))
    provider = KubernetesProvider(
        "k8s", {"web": KubernetesPool("web", port="http")}, access, backoff=RetryBackoff(0.05, 0.2)
    )
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        # Ready (or no condition) only; each slice's port is the one named "http".
        want = at("10.1.0.1:8080", "10.1.0.3:8081")
        await async_wait_until(lambda: latest.merged.get("web@k8s") == want, timeout=5)
        await async_wait_until(lambda: api.streams, timeout=5, what="the watch")
        assert api.watch_versions == ["102"]  # from the list's resourceVersion

        api.apply(endpoint_slice("web-a", {"10.1.0.1": True, "10.1.0.2": True}, {"http": 8080}))
        want = at("10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.3:8081")
        await async_wait_until(lambda: latest.merged.get("web@k8s") == want, timeout=5)
        api.delete("web-b")
        want = at("10.1.0.1:8080", "10.1.0.2:8080")
        await async_wait_until(lambda: latest.merged.get("web@k8s") == want, timeout=5)

        # A bookmark moves the version; a watch that ends resumes from it, without a list.
        api.bookmark()
        await async_wait_until(lambda: provider.resource_versions["web"] == "105", timeout=5)
        for queue in list(api.streams):
            queue.put_nowait(None)  # the server ends the watch (its timeoutSeconds)
        await async_wait_until(lambda: api.watch_versions[-1:] == ["105"], timeout=5)
        assert api.lists == 1

        # 410 as an ERROR event in the stream: list again, and pick up what changed.
        api.apply(endpoint_slice("web-c", {"10.1.0.7": True}, {"http": 8082}))
        api.compact_and_expire(in_stream=True)
        await async_wait_until(lambda: api.lists == 2, timeout=5, what="a relist")
        want = at("10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.7:8082")
        await async_wait_until(lambda: latest.merged.get("web@k8s") == want, timeout=5)

        # 410 as the HTTP status of a watch request: list again too.
        await async_wait_until(lambda: api.streams, timeout=5, what="the watch again")
        api.delete("web-c")
        api.compact_and_expire(in_stream=False)
        await async_wait_until(lambda: api.lists == 3, timeout=5, what="a second relist")
        want = at("10.1.0.1:8080", "10.1.0.2:8080")
        await async_wait_until(lambda: latest.merged.get("web@k8s") == want, timeout=5)
        assert provider.relists == 2
        assert watcher.statistics()[0]["status"] == "ok"

        # The API server gone: failing, and the last good set stays.
        await api.stop()
        await async_wait_until(
            lambda: watcher.statistics()[0]["status"] == "failing", timeout=10, what="failing"
        )
        assert latest.merged["web@k8s"] == want
    finally:
        await watcher.stop()


async def test_a_wrong_token_is_a_failure_not_an_empty_pool(api, tmp_path: Path) -> None:
    api.apply(endpoint_slice("web-a", {"10.1.0.1": True}, {"http": 8080}))
    path = kubeconfig(tmp_path, api.url)
    path.write_text(path.read_text().replace(TOKEN, "stolen"))
    latest = Latest()
    provider = KubernetesProvider(
        "k8s", {"web": KubernetesPool("web", port="http")}, from_kubeconfig(path)
    )
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        await async_wait_until(lambda: watcher.statistics()[0]["status"] == "failing", timeout=5)
        assert "401" in watcher.statistics()[0]["last_error"]
        assert latest.merged == {}
    finally:
        await watcher.stop()


def test_in_cluster_access_reads_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("abc\n")
    (tmp_path / "namespace").write_text("shop")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    access = in_cluster(tmp_path, env)
    assert access.server == "https://10.96.0.1:443"
    assert access.bearer() == "abc" and access.namespace == "shop"
    (tmp_path / "token").write_text("rotated")
    assert access.bearer() == "rotated"  # re-read: bound tokens rotate
    with pytest.raises(FileNotFoundError):
        in_cluster(tmp_path, {})
