"""Read the data plane's counters into a ``Reading`` (``signals.py`` turns two into a sample).

Runs on the event loop once per sample interval: a pass over the endpoints and routes that
copies integers, nothing more. The data plane itself only increments the counters.
"""

from __future__ import annotations

import time

from dispa.ai.signals import Counts, Reading


def read_gateway(gateway, t: float | None = None) -> Reading:
    stats = gateway.stats
    endpoint_requests = stats.endpoint_requests
    endpoints = {}
    regions = {}
    for runtime in gateway.upstreams.by_name.values():
        region_of = {e.address: e.region for e in runtime.config.endpoints if e.region}
        for endpoint in runtime.endpoints:
            key = (runtime.name, endpoint.address)
            requests, failures = endpoint_requests.get(key, (0, 0))
            endpoints[key] = Counts(
                requests, failures, tuple(endpoint.latency_counts), endpoint.active_requests
            )
            region = region_of.get(endpoint.address)
            if region is not None:
                regions[key] = region
    return Reading(
        t=time.time() if t is None else t,
        endpoints=endpoints,
        routes=_route_counts(stats),
        regions=regions,
    )


def _route_counts(stats) -> dict[str, Counts]:
    totals: dict[str, list[int]] = {}
    for (route, _upstream, status_class), count in stats.requests.items():
        if route == "-":
            continue  # answered before any route matched (404s, bad requests): no demand
        entry = totals.setdefault(route, [0, 0])
        entry[0] += count
        if status_class == "5xx":
            entry[1] += count
    routes = {}
    for route, (requests, errors) in totals.items():
        histogram = stats.latency.get(route)
        latency = tuple(histogram.buckets) if histogram is not None else ()
        routes[route] = Counts(requests, errors, latency, 0)
    return routes
