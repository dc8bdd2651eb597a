"""The Kubernetes provider: ready endpoints of a Service, from its EndpointSlices.

Per pool: list ``/apis/discovery.k8s.io/v1/namespaces/NS/endpointslices`` with
``labelSelector=kubernetes.io/service-name=SVC``, then watch from the list's
``resourceVersion`` with ``allowWatchBookmarks=true``. Each watch line is a JSON event:
ADDED / MODIFIED / DELETED change a slice; BOOKMARK only moves the resourceVersion; when the
watch ends (its ``timeoutSeconds``), it resumes from the last resourceVersion seen. A 410
Gone (as an HTTP status or as an ERROR event) means that version is too old: list again.

An endpoint counts when its ``conditions.ready`` is true or absent (the API says absent means
ready); the port is picked by its name in the slice (``port: http``), or the slice's only
port when no name is configured.

Tested against a fake Kubernetes API written with aiohttp in
``tests/integration/discovery/`` (Kubernetes cannot be installed on the build machines); the fake
reproduces the documented wire behaviour, not every feature of the real server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.documents import json_lines, read_answer
from dispa.discovery.kubernetes_auth import KubernetesAccess
from dispa.discovery.provider import (
    DiscoveredEndpoint,
    FollowingProvider,
    format_address,
    run_together,
)

SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


@dataclass(frozen=True)
class KubernetesPool:
    service: str
    port: str | None = None  # the port's name; None: the slice's only port
    namespace: str | None = None  # None: the access's namespace
    region: str | None = None


class Gone(Exception):
    """The resourceVersion is older than the API server keeps: list again."""


def slice_port(slice_object: Mapping, port_name: str | None) -> int | None:
    ports = slice_object.get("ports") or []
    if port_name is None:
        return ports[0].get("port") if len(ports) == 1 else None
    for port in ports:
        if port.get("name") == port_name:
            return port.get("port")
    return None


def endpoints_from_slices(
    slices: Mapping[str, Mapping], port_name: str | None, region: str | None = None
) -> list[DiscoveredEndpoint]:
    endpoints = set()
    for slice_object in slices.values():
        port = slice_port(slice_object, port_name)
        if port is None:
            continue
        for endpoint in slice_object.get("endpoints") or ():
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or ():
                endpoints.add(DiscoveredEndpoint(format_address(address, port), 1, region))
    return sorted(endpoints)


class KubernetesProvider(FollowingProvider):
    kind = "kubernetes"

    def __init__(
        self,
        name: str,
        pools: Mapping[str, KubernetesPool],
        access: KubernetesAccess,
        watch_timeout: int = 300,
        backoff: RetryBackoff | None = None,
    ) -> None:
        super().__init__(name, backoff)
        self.pools = dict(pools)
        self.access = access
        self.watch_timeout = watch_timeout
        self.resource_versions: dict[str, str | None] = {pool: None for pool in self.pools}
        self.relists = 0
        self._views: dict[str, list[DiscoveredEndpoint]] = {}

    async def follow(self, publish) -> None:
        connector = aiohttp.TCPConnector(ssl=self.access.ssl_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            await run_together([self._follow_pool(session, pool, publish) for pool in self.pools])

    def _request(self, pool: str) -> tuple[str, dict, dict]:
        spec = self.pools[pool]
        namespace = spec.namespace or self.access.namespace
        url = self.access.server + SLICES_PATH.format(namespace=quote(namespace, safe=""))
        params = {"labelSelector": f"kubernetes.io/service-name={spec.service}"}
        token = self.access.bearer()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return url, params, headers

    async def _follow_pool(self, session: aiohttp.ClientSession, pool: str, publish) -> None:
        spec = self.pools[pool]
        # Slices by name; kept across watch restarts, replaced whole by a list.
        slices: dict[str, Mapping] = {}
        # A restart after a failure lists again: the watch may have missed events meanwhile.
        self.resource_versions[pool] = None
        while True:
            url, params, headers = self._request(pool)
            if self.resource_versions[pool] is None:
                slices = await self._list(session, url, params, headers, pool)
                self._views[pool] = endpoints_from_slices(slices, spec.port, spec.region)
                await publish(dict(self._views))
            try:
                async for event_type, obj in self._watch(session, url, params, headers, pool):
                    name = (obj.get("metadata") or {}).get("name", "")
                    if event_type == "DELETED":
                        slices.pop(name, None)
                    elif event_type in ("ADDED", "MODIFIED"):
                        slices[name] = obj
                    else:
                        continue
                    self._views[pool] = endpoints_from_slices(slices, spec.port, spec.region)
                    await publish(dict(self._views))
            except Gone:
                self.resource_versions[pool] = None
                self.relists += 1

    async def _list(self, session, url, params, headers, pool: str) -> dict[str, Mapping]:
        async with session.get(url, params=params, headers=headers) as response:
            if response.status != 200:
                raise ConnectionError(f"listing EndpointSlices: HTTP {response.status}")
            listed = await read_answer(response, f"the EndpointSlice list of pool {pool}")
        self.resource_versions[pool] = listed["metadata"]["resourceVersion"]
        return {item["metadata"]["name"]: item for item in listed.get("items") or ()}

    async def _watch(self, session, url, params, headers, pool: str):
        """(type, object) events, the resourceVersion kept current; ends with the stream."""
        params = {
            **params,
            "watch": "1",
            "resourceVersion": self.resource_versions[pool],
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        # The server ends the watch after timeoutSeconds; a silent stream beyond that is dead.
        timeout = aiohttp.ClientTimeout(total=None, sock_read=self.watch_timeout + 30)
        async with session.get(url, params=params, headers=headers, timeout=timeout) as response:
            if response.status == 410:
                raise Gone()
            if response.status != 200:
                raise ConnectionError(f"watching EndpointSlices: HTTP {response.status}")
            source = f"the EndpointSlice watch of pool {pool}"
            async for event in json_lines(response.content.iter_any(), source):
                event_type, obj = event.get("type"), event.get("object") or {}
                if event_type == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ConnectionError(f"watch error: {str(obj.get('message', obj))[:200]}")
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.resource_versions[pool] = version
                yield event_type, obj
