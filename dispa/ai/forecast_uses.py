"""What forecasts are used for: capacity alerts and rate-limit lease sizes. Pure.

- An upstream that declares ``capacity_rps`` is in alert while the highest rate forecast
  over the horizon exceeds it.
- A global rate limit counted per route (``key: route``) leases quota sized from the
  demand expected on this node: max(the route's latest rate, its forecast for the next
  step), so a rise is leased ahead instead of after the tokens run out. Other keys (per
  client, per header) split demand over keys nobody forecasts: they keep the usual sizing.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispa.config.schema import Gateway


def capacity_alerts(
    config: Gateway, forecasts: Mapping[str, list[float]], step_seconds: float
) -> dict[str, dict]:
    """Upstreams whose forecast exceeds their declared capacity, with the numbers."""
    alerts = {}
    for upstream in config.upstreams:
        capacity = upstream.capacity_rps
        values = forecasts.get(upstream.name)
        if capacity is None or not values:
            continue
        peak = max(values)
        if peak > capacity:
            steps_ahead = values.index(peak) + 1
            alerts[upstream.name] = {
                "upstream": upstream.name,
                "capacity_rps": capacity,
                "forecast_rps": round(peak, 3),
                "in_seconds": steps_ahead * step_seconds,
            }
    return alerts


def demand_hints(
    config: Gateway, recent: Mapping[str, float], forecasts: Mapping[str, list[float]]
) -> dict[tuple[str, str], float]:
    """(limit name, route name) -> requests per second to lease for, for route-keyed limits."""
    route_names = [route.name or f"route{index}" for index, route in enumerate(config.routes)]
    hints = {}
    for limit in config.rate_limits:
        if limit.key != "route":
            continue
        for name in route_names:
            if limit.routes and name not in limit.routes:
                continue
            forecast = forecasts.get(name) or [0.0]
            expected = max(recent.get(name, 0.0), forecast[0])
            if expected > 0:
                hints[(limit.name, name)] = expected
    return hints
