"""Endpoint lists as written by people and services: validated into DiscoveredEndpoint.

Used by the file provider (``{pool: [{address, weight, region}]}``) and the etcd provider
(one ``{address, weight, region}`` per key). A bad entry is an error for the whole answer, so
the provider keeps its last good view instead of half of a new one.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispa.config.schema import Address
from dispa.discovery.provider import DiscoveredEndpoint, Pools


class EndpointEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: Address
    weight: int = Field(1, ge=1, le=1000)
    region: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BadEndpoints(ValueError):
    """An endpoint list that does not validate; the message names the bad field."""


def parse_endpoint(raw: object, where: str) -> DiscoveredEndpoint:
    try:
        entry = EndpointEntry.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(str(part) for part in (where, *first["loc"]))
        raise BadEndpoints(f"{path}: {first['msg']}") from None
    return DiscoveredEndpoint(entry.address, entry.weight, entry.region)


def parse_pools(raw: object) -> Pools:
    """``{pool: [{address, weight?, region?}, ...]}``; a bare "host:port" string is allowed
    for an entry."""
    if not isinstance(raw, Mapping):
        raise BadEndpoints("expected a mapping of pool name to a list of endpoints")
    pools: Pools = {}
    for pool, entries in raw.items():
        if not isinstance(entries, list):
            raise BadEndpoints(f"{pool}: expected a list of endpoints")
        pools[str(pool)] = [
            parse_endpoint({"address": entry} if isinstance(entry, str) else entry, f"{pool}.{i}")
            for i, entry in enumerate(entries)
        ]
    return pools
