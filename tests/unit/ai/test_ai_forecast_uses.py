"""Capacity alerts and rate-limit lease sizes from forecasts (pure), and the lease itself."""

from __future__ import annotations

import asyncio

from dispa.ai.forecast_uses import capacity_alerts, demand_hints
from dispa.cluster.quota_client import LeasedQuota
from dispa.cluster.state import ClusterState
from dispa.config.load import build_gateway


def config(**extra):
    return build_gateway(
        {
            "listeners": [{"name": "public", "address": "127.0.0.1:0"}],
            "upstreams": [
                {"name": "small", "endpoints": [{"address": "127.0.0.1:1"}], "capacity_rps": 100},
                {"name": "free", "endpoints": [{"address": "127.0.0.1:2"}]},
            ],
            "routes": [
                {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "small"},
                {"match": {"path_prefix": "/"}, "upstream": "free"},
            ],
            **extra,
        }
    )


def test_a_forecast_above_capacity_is_an_alert_with_its_numbers():
    forecasts = {"small": [80.0, 95.0, 130.0, 120.0], "free": [1e6]}
    alerts = capacity_alerts(config(), forecasts, step_seconds=60.0)
    assert alerts == {
        "small": {
            "upstream": "small",
            "capacity_rps": 100.0,
            "forecast_rps": 130.0,
            "in_seconds": 180.0,
        }
    }
    assert capacity_alerts(config(), {"small": [99.0]}, 60.0) == {}
    assert capacity_alerts(config(), {}, 60.0) == {}


def test_route_keyed_limits_get_max_of_recent_rate_and_forecast():
    limits = {
        "rate_limits": [
            {"name": "per-route", "key": "route", "limit": 1000},
            {"name": "only-api", "key": "route", "limit": 10, "routes": ["api"]},
            {"name": "per-client", "key": "source_ip", "limit": 10},
        ]
    }
    hints = demand_hints(
        config(**limits), {"api": 50.0, "route1": 5.0}, {"api": [40.0], "route1": [8.0]}
    )
    assert hints == {
        ("per-route", "api"): 50.0,
        ("per-route", "route1"): 8.0,
        ("only-api", "api"): 50.0,
    }


class Ledger:
    """The replicated ledger's own grant logic, called directly (no Raft round-trip)."""

    def __init__(self) -> None:
        self.state = ClusterState()
        self.asked: list[int] = []

    async def lease_quota(self, limit_name, key, node, want, limit, window, now):
        self.asked.append(want)
        return self.state.lease_quota(limit_name, key, node, want, limit, window, now)


async def test_a_lease_is_sized_from_the_expected_demand_until_the_window_ends():
    ledger = Ledger()
    quota = LeasedQuota(ledger, "n1", lambda: 3)
    quota.demand_hints = {("per-route", "api"): 400.0}
    assert quota.try_spend("per-route", "api", 6000, 10.0, now=1000.0)
    for _ in range(5):
        await asyncio.sleep(0)
    # Without the hint the first lease asks limit x 0.5 / 3 nodes = 1000; 400/s for the
    # 10 s left of the window is 4000.
    assert ledger.asked == [4000]
    plain = LeasedQuota(Ledger(), "n1", lambda: 3)
    plain.try_spend("per-route", "api", 6000, 10.0, now=1000.0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert plain.store.asked == [1000]
