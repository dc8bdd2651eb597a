"""What discovery reports: ``GET /api/v1/providers`` and its Prometheus metrics.

Both read a ``DiscoveryStatus``: the providers running in this process (none on a core
that is not the Raft leader) and the ones the config declares, so a provider that is
declared but not running here is still listed, with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dispa.discovery.merge import qualified_pool


class DiscoveryStatus(Protocol):
    def providers_document(self) -> dict: ...


def provider_entry(statistics: dict, now: float) -> dict:
    """One running provider as ``GET /api/v1/providers`` shows it."""
    name = statistics["name"]
    retry_at = statistics.get("retry_at")
    failing = statistics.get("status") == "failing"
    return {
        "name": name,
        "type": statistics.get("type"),
        "state": statistics.get("status"),
        "last_success": statistics.get("last_success"),
        "last_error": statistics.get("last_error"),
        "retry_in": round(max(0.0, retry_at - now), 3) if failing and retry_at else None,
        "consecutive_failures": statistics.get("consecutive_failures", 0),
        "failures": statistics.get("failures", 0),
        "updates": statistics.get("updates", 0),
        "pools": {
            qualified_pool(pool, name): count
            for pool, count in sorted((statistics.get("pools") or {}).items())
        },
    }


def idle_entry(name: str, kind: str, state: str) -> dict:
    """A declared provider that does not run in this process (``state`` says why)."""
    return {
        "name": name,
        "type": kind,
        "state": state,
        "last_success": None,
        "last_error": None,
        "retry_in": None,
        "consecutive_failures": 0,
        "failures": 0,
        "updates": 0,
        "pools": {},
    }


def providers_document(
    running: list[dict], declared: list[tuple[str, str]], idle_state: str, now: float
) -> list[dict]:
    """Running providers first-hand; declared ones that do not run here as ``idle_state``."""
    entries = {stats["name"]: provider_entry(stats, now) for stats in running}
    for name, kind in declared:
        entries.setdefault(name, idle_entry(name, kind, idle_state))
    return [entries[name] for name in sorted(entries)]


def providers_route(status: DiscoveryStatus) -> web.RouteDef:
    async def providers(request: web.Request) -> web.Response:
        return web.json_response(status.providers_document())

    return web.get("/api/v1/providers", providers)


class DiscoveryCollector:
    """Prometheus families from the providers running in this process."""

    def __init__(self, status: DiscoveryStatus, clock: Callable[[], float] = time.time) -> None:
        self.status = status
        self.clock = clock

    def describe(self):
        return []

    def collect(self):
        entries = self.status.providers_document()["providers"]
        up = GaugeMetricFamily(
            "dispa_discovery_provider_up",
            "1 while the provider's last answer was good, 0 while it fails (its last good "
            "endpoints are kept); absent where it does not run (a core that is not leader).",
            labels=["provider", "type"],
        )
        updates = CounterMetricFamily(
            "dispa_discovery_updates",
            "Changed endpoint views the provider has handed on.",
            labels=["provider"],
        )
        failures = CounterMetricFamily(
            "dispa_discovery_failures",
            "Failed reads of the provider's source.",
            labels=["provider"],
        )
        endpoints = GaugeMetricFamily(
            "dispa_discovery_endpoints",
            "Endpoints in each pool@provider, from the provider's last good answer.",
            labels=["pool"],
        )
        for entry in entries:
            if entry["state"] not in ("ok", "failing", "starting"):
                continue  # declared here but running elsewhere: that node reports it
            up.add_metric([entry["name"], entry["type"]], 1.0 if entry["state"] == "ok" else 0.0)
            updates.add_metric([entry["name"]], float(entry["updates"]))
            failures.add_metric([entry["name"]], float(entry["failures"]))
            for pool, count in entry["pools"].items():
                endpoints.add_metric([pool], float(count))
        yield from (up, updates, failures, endpoints)
