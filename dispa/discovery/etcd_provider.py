"""The etcd provider: endpoints registered under a key prefix, followed with a watch.

Key layout (one key per instance; ``dispa register`` writes them)::

    PREFIX/POOL/INSTANCE_ID  ->  {"address": "10.0.0.5:8080", "weight": 1, "region": "eu"}

Instances put their key on a lease and keep it alive; when an instance dies its lease
expires, etcd deletes the key, and the watch removes the endpoint. The provider reads the
whole prefix once, then watches from the revision after that read. After any failure it
starts over with a fresh read (which also covers a compacted revision), keeping the last
good view meanwhile. A key whose value does not validate is skipped and reported, so one
bad registration cannot hide every other instance.
"""

from __future__ import annotations

import logging

import aetcd

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.documents import parse_json
from dispa.discovery.parse import BadEndpoints, parse_endpoint
from dispa.discovery.provider import DiscoveredEndpoint, FollowingProvider, Pools

log = logging.getLogger("dispa.discovery")


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """ "http://127.0.0.1:2379" or "127.0.0.1:2379" -> ("127.0.0.1", 2379)."""
    hostport = endpoint.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def instance_key(prefix: str, pool: str, instance: str) -> str:
    return f"{prefix.rstrip('/')}/{pool}/{instance}"


def pools_from_keys(prefix: str, instances: dict[str, DiscoveredEndpoint]) -> Pools:
    """``{key: endpoint}`` -> ``{pool: [endpoints]}``, the pool being the key's first part
    after the prefix."""
    root = prefix.rstrip("/") + "/"
    pools: Pools = {}
    for key, endpoint in instances.items():
        pool, _, _ = key[len(root) :].partition("/")
        pools.setdefault(pool, []).append(endpoint)
    return pools


def _key_text(key: bytes) -> str:
    """A key as text; one that is not UTF-8 (anyone may write under the prefix) stays
    distinct and readable instead of failing the whole provider."""
    return key.decode("utf-8", "backslashreplace")


class EtcdProvider(FollowingProvider):
    kind = "etcd"

    def __init__(
        self,
        name: str,
        endpoints: list[str],
        prefix: str = "/dispa/discovery",
        timeout: float = 5.0,
        backoff: RetryBackoff | None = None,
    ) -> None:
        super().__init__(name, backoff)
        self.endpoints = list(endpoints)
        self.prefix = prefix.rstrip("/")
        self.timeout = timeout
        self.skipped: dict[str, str] = {}  # key -> why its value was not used
        self._next_endpoint = 0

    async def follow(self, publish) -> None:
        # A new client per attempt, rotating through the endpoints: a dead member is left.
        host, port = split_endpoint(self.endpoints[self._next_endpoint % len(self.endpoints)])
        self._next_endpoint += 1
        client = aetcd.Client(host=host, port=port, timeout=self.timeout)
        try:
            root = (self.prefix + "/").encode()
            everything = await client.get_prefix(root)
            instances: dict[str, DiscoveredEndpoint] = {}
            self.skipped.clear()
            for kv in everything.kvs:
                self._apply(instances, _key_text(kv.key), kv.value)
            await publish(pools_from_keys(self.prefix, instances))
            # Without a timeout: a watch waits for changes; a dead server ends it with an error.
            watch = await client.watch_prefix(root, start_revision=everything.header.revision + 1)
            async for event in watch:
                key = _key_text(event.kv.key)
                if event.kind == aetcd.EventKind.DELETE:
                    instances.pop(key, None)
                    self.skipped.pop(key, None)
                else:
                    self._apply(instances, key, event.kv.value)
                await publish(pools_from_keys(self.prefix, instances))
        finally:
            await client.close()

    def _apply(self, instances: dict[str, DiscoveredEndpoint], key: str, value: bytes) -> None:
        relative = key[len(self.prefix) + 1 :]
        if relative.count("/") != 1:
            return  # not POOL/INSTANCE: someone else's key under our prefix
        try:
            instances[key] = parse_endpoint(parse_json(value, f"etcd key {key}"), key)
            self.skipped.pop(key, None)
        except (ValueError, BadEndpoints) as error:
            instances.pop(key, None)
            self.skipped[key] = str(error)
            log.warning("etcd provider %s: skipping %s: %s", self.name, key, error)

    def statistics(self) -> dict:
        return {**super().statistics(), "skipped_keys": dict(self.skipped)}
