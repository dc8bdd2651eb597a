"""Turn a raw anomaly signal into a tail probability: how rare is a value this large?

Raw signals have no common unit and their spread differs per series, so each is compared
with its own recent past: inside the bulk of that past, the empirical fraction of values at
least as large; beyond its top quantile, an exponential tail fitted to the excesses over
that quantile (peaks over threshold), so rarer-than-ever values still get graded. The
answer is never below the empirical fraction: a spike that recurs every hour stays as
common as it is, however extreme it looks against the quiet in between.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

MIN_HISTORY = 50


class TailCalibrator:
    """Sliding history of a signal; `exceedance(x)` estimates P(signal >= x)."""

    def __init__(self, history: int = 2000, tail_quantile: float = 0.98, log_scale: bool = True):
        if history < MIN_HISTORY or not 0.5 <= tail_quantile < 1.0:
            raise ValueError(f"history >= {MIN_HISTORY} and 0.5 <= tail_quantile < 1 required")
        self.history = history
        self.tail_quantile = tail_quantile
        # Signals in units of standard deviations have heavy tails; fitting the tail on
        # log(1 + x) keeps one burst of 1000 sigma from making 50 sigma look ordinary.
        self.log_scale = log_scale
        self._sorted: list[float] = []
        self._arrival: deque[float] = deque()

    def _prepare(self, x: float) -> float:
        return math.log1p(max(x, 0.0)) if self.log_scale else x

    def __len__(self) -> int:
        return len(self._arrival)

    def exceedance(self, x: float) -> float:
        """Estimated probability of a value >= x; 1.0 until the history is long enough."""
        count = len(self._sorted)
        if count < MIN_HISTORY:
            return 1.0
        x = self._prepare(x)
        at_least = (count - bisect.bisect_left(self._sorted, x)) / count
        top = int(self.tail_quantile * (count - 1))
        threshold = self._sorted[top]
        if x <= threshold:
            return max(at_least, 1.0 - self.tail_quantile)
        excesses = self._sorted[top + 1 :]
        mean_excess = sum(excesses) / len(excesses) - threshold if excesses else 0.0
        tail = (1.0 - self.tail_quantile) * math.exp(-(x - threshold) / max(mean_excess, 1e-9))
        return max(at_least, tail)

    def add(self, x: float) -> None:
        x = self._prepare(x)
        bisect.insort(self._sorted, x)
        self._arrival.append(x)
        if len(self._arrival) > self.history:
            oldest = self._arrival.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
