"""The sampling interval of a series, learned from its first timestamps.

Models here count time in samples (a forecast horizon is a number of steps), so they need
the step in seconds; asking the caller for it would make every caller guess it.
"""

from __future__ import annotations

import statistics

GAPS_TO_LEARN_FROM = 16


class StepEstimator:
    """Median of the first positive gaps between timestamps, frozen once enough are seen."""

    def __init__(self, step_seconds: float | None = None) -> None:
        if step_seconds is not None and step_seconds <= 0:
            raise ValueError("step_seconds must be > 0")
        self._fixed = step_seconds
        self._gaps: list[float] = []
        self._last_t: float | None = None
        self.step_seconds: float | None = step_seconds

    def observe(self, t: float) -> None:
        if self._fixed is not None:
            return
        if self._last_t is not None and len(self._gaps) < GAPS_TO_LEARN_FROM:
            gap = t - self._last_t
            # Duplicate timestamps (gap 0) and clock steps backwards say nothing of the step.
            if gap > 0:
                self._gaps.append(gap)
                self.step_seconds = statistics.median(self._gaps)
        self._last_t = t
