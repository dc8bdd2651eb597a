"""Checks that span sections: names that must exist, be unique, or not collide."""

from __future__ import annotations

from collections import Counter

from dispa.config.schema import Gateway


def cross_check(gateway: Gateway) -> list[str]:
    problems: list[str] = []
    problems += _unique(gateway.listeners, "listeners", "name")
    problems += _unique(gateway.listeners, "listeners", "address")
    problems += _unique(gateway.upstreams, "upstreams", "name")
    problems += _unique([r for r in gateway.routes if r.name], "routes", "name")
    known = {u.name for u in gateway.upstreams}
    for index, route in enumerate(gateway.routes):
        if route.upstream is not None and route.upstream not in known:
            hint = f"; known: {', '.join(sorted(known))}" if known else "; no upstreams are defined"
            problems.append(f"routes[{index}].upstream: unknown upstream '{route.upstream}'{hint}")
    for index, upstream in enumerate(gateway.upstreams):
        seen = Counter(e.address for e in upstream.endpoints)
        for address, count in seen.items():
            if count > 1:
                problems.append(
                    f"upstreams[{index}].endpoints: '{address}' is listed {count} times"
                )
        outlier = upstream.outlier
        if outlier.max_ejection < outlier.base_ejection:
            problems.append(
                f"upstreams[{index}].outlier.max_ejection: must not be shorter than base_ejection"
            )
    admin = gateway.admin.address
    for index, listener in enumerate(gateway.listeners):
        if listener.address == admin and not admin.endswith(":0"):
            problems.append(f"listeners[{index}].address: same address as admin.address ({admin})")
    return problems


def _unique(items, section: str, field: str) -> list[str]:
    positions: dict[object, list[int]] = {}
    for index, item in enumerate(items):
        positions.setdefault(getattr(item, field), []).append(index)
    return [
        f"{section}[{where[1]}].{field}: '{value}' is already used by {section}[{where[0]}]"
        for value, where in positions.items()
        if len(where) > 1
    ]


def raw_reference_problems(data: dict) -> list[str]:
    """Unknown-upstream errors from unvalidated data, so they show beside shape errors."""
    upstreams = data.get("upstreams")
    routes = data.get("routes")
    if not isinstance(upstreams, list) or not isinstance(routes, list):
        return []
    known = {u.get("name") for u in upstreams if isinstance(u, dict)}
    problems = []
    for index, route in enumerate(routes):
        name = route.get("upstream") if isinstance(route, dict) else None
        if isinstance(name, str) and name not in known:
            problems.append(f"routes[{index}].upstream: unknown upstream '{name}'")
    return problems
