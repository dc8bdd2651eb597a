"""Global rate limits as the data plane sees them: spend one token, now, without I/O.

The data plane is handed a ``QuotaAccount``. A single gateway uses ``LocalQuota`` (an
exact fixed-window counter); a core or an edge is handed an account that leases slices of
each window from the cluster and spends them locally (``dispa/cluster/quota_client.py``).
Windows are aligned to multiples of their length since the epoch, so every node agrees
on where a window starts.
"""

from __future__ import annotations

import math
from typing import Protocol


def window_start(now: float, window: float) -> float:
    return math.floor(now / window) * window


class QuotaAccount(Protocol):
    def try_spend(self, limit_name: str, key: str, limit: int, window: float, now: float) -> bool:
        """True if one more request may pass in the current window (hot path, no I/O)."""
        ...

    def statistics(self) -> dict:
        """Per limit: admitted and refused in recent windows, mode, over-admission bound."""
        ...


class WindowLog:
    """Admitted and refused counts of the last few windows of each limit, for the admin API."""

    KEEP = 30

    def __init__(self) -> None:
        self.windows: dict[str, dict[float, list[int]]] = {}

    def count(self, limit_name: str, start: float, admitted: bool) -> None:
        per_limit = self.windows.get(limit_name)
        if per_limit is None:
            per_limit = self.windows[limit_name] = {}
        counts = per_limit.get(start)
        if counts is None:
            counts = per_limit[start] = [0, 0]
            if len(per_limit) > self.KEEP:
                del per_limit[min(per_limit)]
        counts[0 if admitted else 1] += 1

    def document(self) -> dict:
        return {
            name: [
                {"window": start, "admitted": c[0], "refused": c[1]}
                for start, c in sorted(per_limit.items())
            ]
            for name, per_limit in self.windows.items()
        }


class LocalQuota:
    """One process's exact fixed-window counter: the account of a single gateway."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, str], list] = {}  # (limit, key) -> [window start, count]
        self.log = WindowLog()

    def try_spend(self, limit_name: str, key: str, limit: int, window: float, now: float) -> bool:
        start = window_start(now, window)
        slot = self.used.get((limit_name, key))
        if slot is None or slot[0] != start:
            if len(self.used) > 100_000:
                self._forget_before(start)
            slot = self.used[(limit_name, key)] = [start, 0]
        admitted = slot[1] < limit
        if admitted:
            slot[1] += 1
        self.log.count(limit_name, start, admitted)
        return admitted

    def _forget_before(self, start: float) -> None:
        self.used = {k: v for k, v in self.used.items() if v[0] >= start}

    def statistics(self) -> dict:
        return {"mode": "local", "overadmission_bound": {}, "windows": self.log.document()}
