"""What the series did at this time of day on the last few days, slot by slot.

Smooth models cannot hold a sharp pattern that repeats at the same minute every day (a
nightly backup, a cron burst); remembering the raw values per slot can. With a depth of one
this is the seasonal-naive forecast, the baseline every seasonal model must beat.
"""

from __future__ import annotations

import statistics

# Finer slots than this only cost memory: the gateway aggregates to a minute or coarser.
MAX_SLOTS = 2880


class SeasonalMemory:
    """Last `depth` values seen in each slot of the period; answers with their median.

    Slots live in one preallocated list, each a short list of values: a deque per slot
    costs about 600 bytes, and the gateway keeps several memories per endpoint.
    """

    def __init__(self, period_seconds: float, step_seconds: float, depth: int) -> None:
        if period_seconds <= 0 or step_seconds <= 0 or depth < 1:
            raise ValueError("period_seconds > 0, step_seconds > 0 and depth >= 1 required")
        self.period_seconds = float(period_seconds)
        self.slots = max(1, min(MAX_SLOTS, round(period_seconds / step_seconds)))
        self.depth = depth
        self._values: list[list[float] | None] = [None] * self.slots

    def _slot(self, t: float) -> int:
        return int((t % self.period_seconds) / self.period_seconds * self.slots + 0.5) % self.slots

    def remember(self, t: float, value: float) -> None:
        slot = self._slot(t)
        values = self._values[slot]
        if values is None:
            self._values[slot] = [value]
            return
        values.append(value)
        if len(values) > self.depth:
            del values[0]

    def recall(self, t: float) -> float | None:
        """Median of the remembered values for the slot of `t`, or None if it is empty."""
        values = self._values[self._slot(t)]
        if not values:
            return None
        return statistics.median(values)
