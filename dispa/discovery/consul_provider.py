"""The Consul provider: healthy instances of catalog services, followed with blocking queries.

Each pool is one service, read from ``GET /v1/health/service/NAME?passing=true`` (only
instances whose checks all pass), then re-asked with ``index=<X-Consul-Index>&wait=<W>s`` so
Consul answers only when something changed or the wait ran out. As Consul's documentation
asks of blocking-query clients: an index that goes backwards (a Consul restore, a new
leader's older state) resets to 0, and queries are rate-limited so an index that keeps
returning at once cannot spin.

Weights: the service's ``Meta.weight``, else a tag ``weight=N``, else ``Weights.Passing``,
else 1 (clamped to 1..1000). Region: ``Meta.region``, else the pool's configured region.

Tested against a fake Consul API written with aiohttp in
``tests/integration/discovery/`` (Consul cannot be installed on the build machines); the fake
reproduces the documented wire behaviour, not every feature of the real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.documents import read_answer
from dispa.discovery.provider import (
    DiscoveredEndpoint,
    FollowingProvider,
    clamp_weight,
    format_address,
    run_together,
)


@dataclass(frozen=True)
class ConsulPool:
    service: str
    tag: str | None = None  # only instances with this tag
    datacenter: str | None = None
    region: str | None = None


def next_index(current: int, answered: int) -> int:
    """The index of the next blocking query, from the last one and X-Consul-Index."""
    if answered < current or answered <= 0:
        return 0  # went backwards (or is nonsense): start over with a plain read
    return answered


def _weight(service: Mapping) -> int:
    meta = service.get("Meta") or {}
    if str(meta.get("weight", "")).isdigit():
        return clamp_weight(int(meta["weight"]))
    for tag in service.get("Tags") or ():
        key, _, value = tag.partition("=")
        if key == "weight" and value.isdigit():
            return clamp_weight(int(value))
    passing = (service.get("Weights") or {}).get("Passing")
    return clamp_weight(passing) if isinstance(passing, int) else 1


def endpoints_from_health(entries: list, region: str | None = None) -> list[DiscoveredEndpoint]:
    """The entries of /v1/health/service as endpoints; any non-passing check excludes one
    (``passing=true`` already filters on the server: this guards against a proxy that drops
    the parameter)."""
    endpoints = []
    for entry in entries:
        checks = entry.get("Checks") or ()
        if any(check.get("Status") != "passing" for check in checks):
            continue
        service = entry.get("Service") or {}
        host = service.get("Address") or (entry.get("Node") or {}).get("Address")
        port = service.get("Port")
        if not host or not isinstance(port, int):
            continue
        meta_region = (service.get("Meta") or {}).get("region")
        endpoints.append(
            DiscoveredEndpoint(format_address(host, port), _weight(service), meta_region or region)
        )
    return endpoints


class ConsulProvider(FollowingProvider):
    kind = "consul"

    def __init__(
        self,
        name: str,
        pools: Mapping[str, ConsulPool],
        address: str = "http://127.0.0.1:8500",
        token: str | None = None,
        wait: float = 60.0,
        min_interval: float = 0.5,
        backoff: RetryBackoff | None = None,
    ) -> None:
        super().__init__(name, backoff)
        self.pools = dict(pools)
        self.address = address.rstrip("/")
        self.token = token
        self.wait = wait
        self.min_interval = min_interval
        self.indexes: dict[str, int] = {pool: 0 for pool in self.pools}
        self._views: dict[str, list[DiscoveredEndpoint]] = {}

    async def follow(self, publish) -> None:
        headers = {"X-Consul-Token": self.token} if self.token else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            await run_together([self._follow_pool(session, pool, publish) for pool in self.pools])

    async def _follow_pool(self, session: aiohttp.ClientSession, pool: str, publish) -> None:
        spec = self.pools[pool]
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            params = {"passing": "true", "index": str(self.indexes[pool])}
            params["wait"] = f"{max(1, int(self.wait))}s"
            if spec.tag:
                params["tag"] = spec.tag
            if spec.datacenter:
                params["dc"] = spec.datacenter
            # Consul adds up to wait/16 of jitter to the wait: the timeout leaves room for it.
            timeout = aiohttp.ClientTimeout(total=self.wait * 17 / 16 + 5, sock_connect=5)
            url = f"{self.address}/v1/health/service/{spec.service}"
            async with session.get(url, params=params, timeout=timeout) as response:
                if response.status != 200:
                    body = (await response.text())[:200]
                    raise ConnectionError(f"Consul answered {response.status}: {body}")
                answered = int(response.headers.get("X-Consul-Index", "0") or 0)
                entries = await read_answer(response, f"Consul's answer for pool {pool}")
            self.indexes[pool] = next_index(self.indexes[pool], answered)
            self._views[pool] = endpoints_from_health(entries, spec.region)
            await publish(dict(self._views))
            rest = self.min_interval - (loop.time() - started)
            if rest > 0:
                await asyncio.sleep(rest)
