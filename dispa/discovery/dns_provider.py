"""The DNS provider: A/AAAA names with a fixed port, or SRV names with their own ports.

Each pool is re-resolved when the shortest TTL of its answer runs out (kept between
``min_interval`` and ``max_interval``, so a TTL of 0 does not spin and a day-long TTL still
notices changes). For SRV, only the group with the lowest priority is used (RFC 2782:
higher priorities are fallbacks), and each record's weight becomes the endpoint weight
(clamped to 1..1000). A name that does not exist (NXDOMAIN) empties its pool, because that
is an answer; a server that does not answer, or answers SERVFAIL, is a failure, and the last
good view stays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from dispa.discovery import dns_client
from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.dns_wire import TYPE_A, TYPE_AAAA, TYPE_SRV, TYPES
from dispa.discovery.provider import (
    DiscoveredEndpoint,
    FollowingProvider,
    clamp_weight,
    format_address,
)


@dataclass(frozen=True)
class DnsPool:
    name: str  # the DNS name to resolve
    record: str = "A"  # A | AAAA | SRV
    port: int | None = None  # for A and AAAA
    weight: int = 1  # for A and AAAA: every address gets it
    region: str | None = None


def lowest_priority(records: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """The SRV records of the best (lowest) priority; the others are fallbacks."""
    if not records:
        return []
    best = min(priority for priority, _, _, _ in records)
    return [record for record in records if record[0] == best]


class DnsProvider(FollowingProvider):
    kind = "dns"

    def __init__(
        self,
        name: str,
        pools: Mapping[str, DnsPool],
        server: tuple[str, int] | None = None,
        timeout: float = 2.0,
        min_interval: float = 1.0,
        max_interval: float = 300.0,
        negative_interval: float = 5.0,
        backoff: RetryBackoff | None = None,
    ) -> None:
        super().__init__(name, backoff)
        self.pools = dict(pools)
        self.server = server
        self.timeout = timeout
        self.min_interval = min_interval
        self.max_interval = max_interval
        # How soon to ask again about a name that has no records (yet): the negative TTL in
        # the SOA would need another parse, and a new service should show up quickly.
        self.negative_interval = negative_interval
        self.rounds = 0  # resolutions of every pool so far (shows the TTL is respected)

    async def follow(self, publish) -> None:
        server = self.server or dns_client.system_nameserver()
        while True:
            view, ttls = {}, []
            for pool, spec in self.pools.items():
                endpoints, ttl = await self.resolve_pool(server, spec)
                view[pool] = endpoints
                ttls.append(ttl)
            self.rounds += 1
            await publish(view)
            shortest = min(ttls, default=self.max_interval)
            await asyncio.sleep(min(self.max_interval, max(self.min_interval, shortest)))

    async def resolve_pool(self, server, spec: DnsPool) -> tuple[list[DiscoveredEndpoint], float]:
        if spec.record == "SRV":
            return await self._resolve_srv(server, spec)
        addresses, ttl = await self._addresses(server, spec.name, TYPES[spec.record])
        endpoints = [
            DiscoveredEndpoint(format_address(address, spec.port), spec.weight, spec.region)
            for address in addresses
        ]
        return endpoints, ttl

    async def _addresses(self, server, name: str, record_type: int) -> tuple[list[str], float]:
        answer = await dns_client.query(server, name, record_type, self.timeout)
        records = [record for record in answer.records if record.type == record_type]
        return [record.value for record in records], min(
            (record.ttl for record in answer.records), default=self.negative_interval
        )

    async def _resolve_srv(self, server, spec: DnsPool):
        answer = await dns_client.query(server, spec.name, TYPE_SRV, self.timeout)
        records = lowest_priority([r.value for r in answer.records if r.type == TYPE_SRV])
        ttls = [record.ttl for record in answer.records] or [self.negative_interval]
        endpoints = []
        for _, weight, port, target in records:
            addresses, ttl = await self._addresses(server, target, TYPE_A)
            if not addresses:
                addresses, ttl = await self._addresses(server, target, TYPE_AAAA)
            ttls.append(ttl)
            endpoints += [
                DiscoveredEndpoint(format_address(address, port), clamp_weight(weight), spec.region)
                for address in addresses or [target]  # unresolvable here: the gateway tries
            ]
        return endpoints, min(ttls)
