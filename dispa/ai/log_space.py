"""Run a forecaster on a log-like scale of the series.

Load is multiplicative: a burst doubles the rate, a quiet night halves it, a daily cycle
scales with the level. On asinh(value / scale) those become additive and of similar size
wherever the level is, so one robust model fits quiet and busy series alike. asinh is
linear near zero and logarithmic far from it, so zeros and negative values are fine.
Medians survive monotone transforms, so a robust forecast stays robust once mapped back.
"""

from __future__ import annotations

import math
import statistics
from typing import Protocol

SAMPLES_FOR_SCALE = 16
# The scale sits below typical values so that ordinary ones are already in the log regime.
SCALE_FRACTION = 0.1


class PointForecaster(Protocol):
    def learn(self, t: float, value: float) -> None: ...

    def predict_at(self, t: float) -> float: ...


class LogSpace:
    """Wraps a forecaster; buffers the first samples to pick the scale, then replays them."""

    def __init__(self, model: PointForecaster) -> None:
        self.model = model
        self.scale: float | None = None
        self._buffered: list[tuple[float, float]] = []

    def to_log(self, value: float) -> float:
        return math.asinh(value / self.scale)

    def from_log(self, value: float) -> float:
        # Clamped so a wild forecast in log space cannot overflow on the way back.
        return math.sinh(max(-700.0, min(700.0, value))) * self.scale

    def learn(self, t: float, value: float) -> None:
        if self.scale is not None:
            self.model.learn(t, self.to_log(value))
            return
        self._buffered.append((t, value))
        if len(self._buffered) >= SAMPLES_FOR_SCALE:
            typical = statistics.median(abs(v) for _, v in self._buffered)
            self.scale = max(typical * SCALE_FRACTION, 1e-9)
            for buffered_t, buffered_value in self._buffered:
                self.model.learn(buffered_t, self.to_log(buffered_value))
            self._buffered.clear()

    def predict_at(self, t: float) -> float:
        if self.scale is None:
            if not self._buffered:
                return 0.0
            return statistics.median(v for _, v in self._buffered)
        return self.from_log(self.model.predict_at(t))
