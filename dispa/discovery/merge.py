"""Pure functions from provider views to the merged view, and from that to a shared config.

Pools are named ``pool@provider`` so that two providers may both have a pool "web" without
one overwriting the other. An upstream takes a discovered pool either by that name or by
``discovery: "pool@provider"`` (or ``discovery: {pool: P, provider: Q}``) beside its name.
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


def discovery_key(upstream: Mapping) -> str:
    """The ``pool@provider`` an upstream takes its endpoints from (its name by default)."""
    binding = upstream.get("discovery")
    if isinstance(binding, Mapping):
        return qualified_pool(str(binding.get("pool")), str(binding.get("provider")))
    if isinstance(binding, str):
        return binding
    return str(upstream.get("name"))


def apply_discovered(shared_config: Mapping, merged: Mapping[str, list[DiscoveredEndpoint]]):
    """The shared config with each discovered upstream's endpoints replaced by what its pool
    holds. A pool with no endpoints, or no answer yet, leaves the upstream as it is: an
    upstream is never emptied by discovery (a source that blinked must not take a service
    down). The input is not modified; an unchanged config comes back equal to the input."""
    result = copy.deepcopy(dict(shared_config))
    for upstream in result.get("upstreams") or ():
        endpoints = merged.get(discovery_key(upstream))
        if endpoints:
            upstream["endpoints"] = [endpoint.to_config() for endpoint in sorted(set(endpoints))]
    return result
