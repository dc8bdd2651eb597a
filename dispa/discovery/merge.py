"""Pure functions from provider views to the merged view, and from that to a shared config.

Pools are named ``pool@provider`` so that two providers may both have a pool "web" without
one overwriting the other. An upstream takes a discovered pool with
``discovery: "pool@provider"``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from dispa.discovery.provider import DiscoveredEndpoint, Pools


def qualified_pool(pool: str, provider: str) -> str:
    return f"{pool}@{provider}"


def merge_views(views: Mapping[str, Pools]) -> Pools:
    """``{provider: {pool: endpoints}}`` -> ``{"pool@provider": endpoints}``, sorted."""
    merged = {
        qualified_pool(pool, provider): sorted(set(endpoints))
        for provider, pools in views.items()
        for pool, endpoints in pools.items()
    }
    return dict(sorted(merged.items()))


def discovery_key(upstream: Mapping) -> str | None:
    """The ``pool@provider`` an upstream takes its endpoints from, if any."""
    binding = upstream.get("discovery")
    return binding if isinstance(binding, str) else None


def apply_discovered(shared_config: Mapping, merged: Mapping[str, list[DiscoveredEndpoint]]):
    """The config with each discovered upstream's endpoints replaced by what its pool holds.

    A pool with no endpoints, or no answer yet, leaves the upstream as it is: an upstream is
    never emptied by discovery (a source that blinked must not take a service down). Works
    on a shared config or a whole gateway config; the input is not modified, and an
    unchanged config comes back equal to the input."""
    result = copy.deepcopy(dict(shared_config))
    for upstream in result.get("upstreams") or ():
        key = discovery_key(upstream)
        endpoints = merged.get(key) if key is not None else None
        if endpoints:
            upstream["endpoints"] = [endpoint.to_config() for endpoint in sorted(set(endpoints))]
    return result


def carry_discovered_endpoints(current: object, proposed: object) -> object:
    """``proposed`` with the endpoints of the ``current`` config's upstream of the same
    ``discovery`` pool filled in where it lists none.

    An operator's config names the pool, not its endpoints: without this, every new revision
    they write would empty the discovered upstreams until the leader's watcher wrote them
    back. Part of a replicated command, so it is pure and never raises, whatever the shapes.
    """
    if not isinstance(current, Mapping) or not isinstance(proposed, Mapping):
        return proposed
    known: dict[str, list] = {}
    for upstream in current.get("upstreams") or ():
        if isinstance(upstream, Mapping) and upstream.get("endpoints"):
            key = discovery_key(upstream)
            if key is not None:
                known.setdefault(key, upstream["endpoints"])
    upstreams = proposed.get("upstreams")
    if not known or not isinstance(upstreams, list):
        return proposed
    filled = []
    for upstream in upstreams:
        key = discovery_key(upstream) if isinstance(upstream, Mapping) else None
        if key in known and not upstream.get("endpoints"):
            upstream = {**upstream, "endpoints": copy.deepcopy(known[key])}
        filled.append(upstream)
    return {**proposed, "upstreams": filled}
