"""Global rate limits across the cluster: lease slices of each window, spend them locally.

Each node holds, per (limit, key), the tokens it leased for the current window. A request
spends one with no network call. When the tokens run low the node asks the ledger (a
replicated command) for more, before it runs out. A node with no token yet (the first
request of a key in a window, before any grant) may admit ``BORROW`` request(s) on credit
while its lease is in flight, repaid from the grant; everything else without a token is
refused. The ledger never grants more than the limit in one window, so while a node
reaches the quorum the cluster admits at most ``limit + BORROW x nodes`` per window and
key (the credit is lost only when the ledger is already empty), and under-admission is
bounded by the tokens still leased but unspent when the window ends (at most one slice
per node; a busy node spends its slice long before that).

Cut off from the quorum, a node keeps spending what it holds, then falls back to
``limit / cluster size`` per window on its own, and stays there until a lease succeeds
again: it keeps probing the ledger (at most once per ``RETRY_AFTER``) while it serves its
share, so traffic is never refused for want of an answer from a lost quorum. In that
mode each cut-off node may admit up to that share on top of what the connected nodes
admit: the over-admission bound exported in metrics is that share, per cut-off node.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from dispa.cluster.bridge import CommandFailed
from dispa.proxy.quota import WindowLog, window_start

log = logging.getLogger("dispa.quota")

# Ask for more when a slot's tokens fall to this share of its last grant.
REFILL_AT = 0.5
# A node's first lease in a window asks for this share of the limit per node.
FIRST_SHARE = 0.5
# Requests a node may admit on credit per key and window while its lease is in flight:
# without it, the first request of every window on every node would wait or be refused.
BORROW = 1
# While cut off, the node asks the ledger again at most this often (seconds).
RETRY_AFTER = 1.0


class _Slot:
    __slots__ = ("debt", "exhausted", "fallback_used", "last_grant", "pending", "tokens", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.tokens = 0
        self.last_grant = 0
        self.pending = False
        self.exhausted = False  # the ledger said no more for this window
        self.fallback_used = 0
        self.debt = 0  # admitted on credit, to be repaid from the next grant


class LeasedQuota:
    def __init__(
        self,
        store,
        node_id: str,
        cluster_size: Callable[[], int],
        fallback_share: Callable[[int], int] | None = None,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.cluster_size = cluster_size
        # What this node admits per window of a limit while cut off: limit / cluster size
        # for a core; an edge's configured share.
        self.fallback_share = fallback_share or self._share_by_cluster_size
        self.slots: dict[tuple[str, str], _Slot] = {}
        self.log = WindowLog()
        # Set by a failed lease, cleared by the next successful one.
        self.cut_off = False
        self.retry_at = 0.0
        # limit name -> the share this node may admit per window while cut off
        self.fallback_limits: dict[str, int] = {}
        self._tasks: set[asyncio.Task] = set()
        # (limit, key) -> requests per second this node expects, set by the AI forecaster:
        # max(recent rate, forecast). A lease asks for enough to cover it until the window
        # ends, so a rise in demand is leased ahead instead of after the tokens run out.
        self.demand_hints: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------------ the hot path

    def try_spend(self, limit_name: str, key: str, limit: int, window: float, now: float) -> bool:
        start = window_start(now, window)
        slot = self.slots.get((limit_name, key))
        if slot is None or slot.window != start:
            slot = self._new_slot(limit_name, key, start)
        if slot.tokens > 0:
            slot.tokens -= 1
            if (
                not slot.pending
                and not slot.exhausted
                and slot.tokens <= slot.last_grant * REFILL_AT
            ):
                self._lease(limit_name, key, slot, limit, window, now)
            self.log.count(limit_name, start, True)
            return True
        if self.cut_off:
            share = self.fallback_share(limit)
            admitted = slot.fallback_used < share
            if admitted:
                slot.fallback_used += 1
            self.fallback_limits[limit_name] = share
            if not slot.pending and time.monotonic() >= self.retry_at:
                self.retry_at = time.monotonic() + RETRY_AFTER
                self._lease(limit_name, key, slot, limit, window, now)
        else:
            # Credit only before the first grant of the window: later, the node knows the
            # ledger's state from its own leases and asks ahead of running out.
            admitted = not slot.exhausted and slot.last_grant == 0 and slot.debt < BORROW
            if admitted:
                slot.debt += 1
            if not slot.pending and not slot.exhausted:
                self._lease(limit_name, key, slot, limit, window, now)
        self.log.count(limit_name, start, admitted)
        return admitted

    def _share_by_cluster_size(self, limit: int) -> int:
        return max(1, limit // max(1, self.cluster_size()))

    def _new_slot(self, limit_name: str, key: str, start: float) -> _Slot:
        if len(self.slots) > 100_000:
            self.slots = {k: s for k, s in self.slots.items() if s.window >= start}
        slot = self.slots[(limit_name, key)] = _Slot(start)
        return slot

    # ------------------------------------------------------------------ leasing

    def _lease(
        self, limit_name: str, key: str, slot: _Slot, limit: int, window: float, now: float
    ) -> None:
        nodes = max(1, self.cluster_size())
        if slot.last_grant:
            want = slot.last_grant * 2  # demand outran the last slice: ask for more
        else:
            want = max(1, math.ceil(limit * FIRST_SHARE / nodes))
        expected = self.demand_hints.get((limit_name, key))
        if expected:
            want = max(want, math.ceil(expected * (slot.window + window - now)))
        want = min(want, limit)
        slot.pending = True
        task = asyncio.get_running_loop().create_task(
            self._request(limit_name, key, slot, want, limit, window, now)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, limit_name, key, slot: _Slot, want, limit, window, now) -> None:
        try:
            result = await self.store.lease_quota(
                limit_name, key, self.node_id, want, limit, window, now
            )
        except CommandFailed as failure:
            if not self.cut_off:
                log.warning(
                    "cannot lease rate-limit quota (%s): falling back to the limit "
                    "divided by the cluster size until the cluster answers again",
                    failure.reason,
                )
                self.cut_off = True
                self.retry_at = time.monotonic() + RETRY_AFTER
            return
        finally:
            slot.pending = False
        if not result.get("ok"):
            return
        granted = int(result.get("granted", 0))
        if result.get("window") != slot.window:
            return  # the window rolled over while we asked: that grant is spent already
        repaid = min(slot.debt, granted)
        slot.debt -= repaid
        slot.tokens += granted - repaid
        slot.last_grant = max(granted, 1)
        if granted == 0:
            slot.exhausted = True
        if self.cut_off:
            log.info("rate-limit quota leases succeed again: leaving fallback")
            self.cut_off = False
            self.fallback_limits.clear()

    def statistics(self) -> dict:
        in_fallback = self.cut_off
        return {
            "mode": "fallback" if in_fallback else "leased",
            # Requests per window and key this node may admit beyond the cluster-wide limit:
            # its credit while leasing, or its share of the limit while cut off.
            "overadmission_bound": dict(self.fallback_limits)
            if in_fallback
            else {name: BORROW for name in self.log.windows},
            "leased_tokens": sum(s.tokens for s in self.slots.values()),
            "windows": self.log.document(),
        }
