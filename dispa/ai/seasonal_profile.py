"""A repeating pattern over one period (a day, a week), learned online.

The pattern is held as values at evenly spaced knots and read by linear interpolation, so
it is smooth, costs the same at any sampling interval, and every sample teaches the two
knots around it.
"""

from __future__ import annotations

import math


class SeasonalProfile:
    """Additive offset by phase of a period, updated by a small gradient step per sample."""

    def __init__(self, period_seconds: float, knots: int, memory_periods: float) -> None:
        if period_seconds <= 0 or knots < 2 or memory_periods <= 0:
            raise ValueError("period_seconds > 0, knots >= 2 and memory_periods > 0 required")
        self.period_seconds = float(period_seconds)
        self.knots = knots
        self.memory_periods = float(memory_periods)
        self._values = [0.0] * knots
        # Weight each knot has received: a knot learns as a plain average until it has seen
        # enough, then as an exponential average with the configured memory.
        self._weights = [0.0] * knots

    def _locate(self, t: float) -> tuple[int, int, float]:
        position = (t % self.period_seconds) / self.period_seconds * self.knots
        left = int(position) % self.knots
        return left, (left + 1) % self.knots, position - math.floor(position)

    def value(self, t: float) -> float:
        left, right, fraction = self._locate(t)
        return (1.0 - fraction) * self._values[left] + fraction * self._values[right]

    def coverage(self) -> float:
        """Fraction of knots that have learned anything yet."""
        return sum(1 for weight in self._weights if weight > 0.0) / self.knots

    def update(self, t: float, target: float, step_seconds: float) -> None:
        """Move the profile at `t` toward `target`, one sample of `step_seconds` long."""
        left, right, fraction = self._locate(t)
        # Samples per period that land near one knot: how much weight a knot gets per period.
        weight_per_period = self.period_seconds / self.knots / step_seconds
        slowest_rate = min(1.0, 1.0 / (self.memory_periods * weight_per_period))
        for knot, share in ((left, 1.0 - fraction), (right, fraction)):
            if share <= 0.0:
                continue
            self._weights[knot] += share
            # A weighted running mean at first, an exponential one once the memory is full.
            rate = max(slowest_rate * share, share / self._weights[knot])
            self._values[knot] += rate * (target - self._values[knot])
