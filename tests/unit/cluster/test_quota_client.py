"""The leased quota account against a ledger that answers, or fails, as a test scripts it.

The ledger here is the replicated state machine's own quota logic (ClusterState), so the
grants are the real ones; only the Raft round-trip is replaced by a direct call.
"""

from __future__ import annotations

import asyncio
import logging

from dispa.cluster import quota_client
from dispa.cluster.bridge import CommandFailed
from dispa.cluster.quota_client import LeasedQuota
from dispa.cluster.state import ClusterState


class ScriptedLedger:
    def __init__(self) -> None:
        self.reachable = True
        self.state = ClusterState()
        self.calls = 0

    async def lease_quota(self, limit_name, key, node, want, limit, window, now):
        self.calls += 1
        await asyncio.sleep(0)
        if not self.reachable:
            raise CommandFailed("no quorum", maybe_committed=False)
        return self.state.lease_quota(limit_name, key, node, want, limit, window, now)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _spend(quota: LeasedQuota, count: int, now: float, limit: int = 30) -> int:
    admitted = 0
    for _ in range(count):
        admitted += quota.try_spend("shared", "k", limit, 1.0, now)
        await _settle()
    return admitted


async def test_connected_node_admits_no_more_than_the_ledger_grants_plus_its_credit() -> None:
    ledger = ScriptedLedger()
    quota = LeasedQuota(ledger, "n1", lambda: 3)
    admitted = await _spend(quota, 100, now=1000.2)
    # The first request went on credit and was repaid from the first grant.
    assert admitted == 30
    assert quota.statistics()["mode"] == "leased"


async def test_a_cut_off_node_serves_its_share_in_every_window_and_keeps_probing(
    monkeypatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(quota_client.time, "monotonic", lambda: clock[0])
    ledger = ScriptedLedger()
    ledger.reachable = False
    quota = LeasedQuota(ledger, "n1", lambda: 3)
    # The first request goes on credit while the first lease fails.
    assert await _spend(quota, 1, now=2000.1) == 1
    assert quota.statistics()["mode"] == "fallback"
    per_window = []
    for second in range(1, 6):
        clock[0] = float(second)  # probes are due again every second
        per_window.append(await _spend(quota, 50, now=2000.0 + second + 0.1))
    assert per_window == [10] * 5
    assert ledger.calls >= 5  # it kept asking while it served
    assert quota.statistics()["overadmission_bound"] == {"shared": 10}


async def test_a_successful_lease_ends_the_fallback(monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO, logger="dispa.quota")
    clock = [0.0]
    monkeypatch.setattr(quota_client.time, "monotonic", lambda: clock[0])
    ledger = ScriptedLedger()
    ledger.reachable = False
    quota = LeasedQuota(ledger, "n1", lambda: 3)
    await _spend(quota, 3, now=3000.1)
    assert quota.cut_off
    ledger.reachable = True
    clock[0] = 5.0
    await _spend(quota, 1, now=3001.1)
    assert not quota.cut_off
    assert quota.statistics()["mode"] == "leased"
    # Falling back is a warning; leaving the fallback is back to normal: info.
    said = [(r.levelname, r.getMessage().split(" (")[0].split(":")[0]) for r in caplog.records]
    assert said == [
        ("WARNING", "cannot lease rate-limit quota"),
        ("INFO", "rate-limit quota leases succeed again"),
    ]
    # Back on leases, the node again admits what the ledger grants for the window.
    assert await _spend(quota, 100, now=3002.5) == 30
