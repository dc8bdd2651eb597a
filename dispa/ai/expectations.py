"""What a value was expected to be, by several models, and how surprising it is to each.

An anomaly is a value that no reasonable model of the series explains. A smooth seasonal
model explains noisy traffic but not a sharp edge that repeats daily; yesterday's value
explains the edge but not noise. So the surprise of a value is its standardized residual
against the model that explains it best: the smallest in absolute value.
"""

from __future__ import annotations

from dispa.ai.cadence import StepEstimator
from dispa.ai.holt_winters import RobustHoltWinters
from dispa.ai.robust_scale import RobustScale
from dispa.ai.seasonal_memory import SeasonalMemory

DAY_SECONDS = 86_400.0
WEEK_SECONDS = 7 * DAY_SECONDS


class Expectations:
    """Robust Holt-Winters, yesterday's and last week's values, each with its error scale."""

    def __init__(self, step_seconds: float | None = None) -> None:
        self._step = StepEstimator(step_seconds)
        self.smooth = RobustHoltWinters(step_seconds)
        self._yesterday: SeasonalMemory | None = None
        self._last_week: SeasonalMemory | None = None
        self._scales = [RobustScale() for _ in range(3)]
        # Residual against the slow level and season only: a shift the fast level has
        # already absorbed still shows here for hours.
        self._baseline_scale = RobustScale()
        self.first_t: float | None = None

    def _predictions(self, t: float) -> list[float | None]:
        span = 0.0 if self.first_t is None else t - self.first_t
        return [
            self.smooth.predict_at(t) if self.smooth.samples else None,
            self._yesterday.recall(t) if self._yesterday and span >= DAY_SECONDS else None,
            self._last_week.recall(t) if self._last_week and span >= WEEK_SECONDS else None,
        ]

    def surprise(self, t: float, value: float) -> float | None:
        """Signed residual in standard deviations of the best-explaining model, or None."""
        best: float | None = None
        for prediction, scale in zip(self._predictions(t), self._scales, strict=True):
            if prediction is None or not scale.ready:
                continue
            z = (value - prediction) / scale.sigma
            if best is None or abs(z) < abs(best):
                best = z
        return best

    def baseline_surprise(self, t: float, value: float) -> float | None:
        """Signed residual against the slow level and season, in its standard deviations."""
        if not self._baseline_scale.ready:
            return None
        return (value - self.smooth.baseline_at(t)) / self._baseline_scale.sigma

    def learn(self, t: float, value: float) -> None:
        self._step.observe(t)
        if self.first_t is None:
            self.first_t = t
        for prediction, scale in zip(self._predictions(t), self._scales, strict=True):
            if prediction is not None:
                scale.update(value - prediction)
        if self.smooth.samples:
            self._baseline_scale.update(value - self.smooth.baseline_at(t))
        self.smooth.learn(t, value)
        step = self._step.step_seconds
        if self._yesterday is None and step is not None:
            self._yesterday = SeasonalMemory(DAY_SECONDS, step, depth=1)
            self._last_week = SeasonalMemory(WEEK_SECONDS, step, depth=1)
        if self._yesterday is not None:
            self._yesterday.remember(t, value)
            self._last_week.remember(t, value)
