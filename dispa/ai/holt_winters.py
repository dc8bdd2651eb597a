"""A smooth, robust seasonal forecaster: one of the candidates the gateway's forecaster blends.

The model is a robust Holt-Winters: a level that follows the deseasonalized series, a daily
profile and, once the series spans two weeks, a weekly one. Every update is clipped to a few
robust standard deviations (Huber), so a spike or an outage teaches the model little; that
is what lets it beat copying yesterday on real traffic, whose noise and bursts the seasonal
naive forecast copies too. A fast and a slow level are kept: the fast one carries the last
hour's offset into the next minutes, decaying toward the slow one as the horizon grows.
"""

from __future__ import annotations

import math

from dispa.ai.cadence import StepEstimator
from dispa.ai.robust_scale import RobustScale
from dispa.ai.seasonal_profile import SeasonalProfile

DAY_SECONDS = 86_400.0
WEEK_SECONDS = 7 * DAY_SECONDS


def _rate_for_halflife(step_seconds: float, halflife_seconds: float) -> float:
    return 1.0 - 0.5 ** (step_seconds / halflife_seconds)


class RobustHoltWinters:
    """`learn(t, value)` once per sample (t in seconds), `forecast(horizon)` for the next steps."""

    def __init__(
        self,
        step_seconds: float | None = None,
        fast_halflife_seconds: float = 1800.0,
        slow_halflife_seconds: float = DAY_SECONDS,
        offset_decay_seconds: float = 7200.0,
        daily_knots: int = 96,
        weekly_knots: int = 168,
        season_memory_periods: float = 3.0,
        huber_k: float = 2.0,
        scale_halflife_seconds: float = 7200.0,
    ) -> None:
        self._step = StepEstimator(step_seconds)
        self.fast_halflife_seconds = fast_halflife_seconds
        self.slow_halflife_seconds = slow_halflife_seconds
        self.offset_decay_seconds = offset_decay_seconds
        self.huber_k = huber_k
        self.scale_halflife_seconds = scale_halflife_seconds
        self.daily = SeasonalProfile(DAY_SECONDS, daily_knots, season_memory_periods)
        self.weekly = SeasonalProfile(WEEK_SECONDS, weekly_knots, season_memory_periods)
        self.fast_level = 0.0
        self.slow_level = 0.0
        self.scale = RobustScale()  # of the one-step error
        self.samples = 0
        self.first_t: float | None = None
        self.last_t: float | None = None

    @property
    def step_seconds(self) -> float | None:
        return self._step.step_seconds

    def _uses_weekly(self) -> bool:
        # A weekly profile learned from less than two weeks mostly memorises noise.
        return self.first_t is not None and self.last_t - self.first_t >= 2 * WEEK_SECONDS

    def _season(self, t: float) -> float:
        season = self.daily.value(t)
        if self._uses_weekly():
            season += self.weekly.value(t)
        return season

    def predict_at(self, t: float) -> float:
        """Expected value at time `t` (at or after the last sample learned)."""
        if self.samples == 0:
            return 0.0
        ahead = max(0.0, t - self.last_t)
        offset = (self.fast_level - self.slow_level) * math.exp(-ahead / self.offset_decay_seconds)
        return self.slow_level + offset + self._season(t)

    def baseline_at(self, t: float) -> float:
        """Slow level plus season: the expectation with the last hours' offset left out."""
        return self.slow_level + self._season(t)

    def forecast(self, horizon: int) -> list[float]:
        """Expected values of the next `horizon` steps after the last sample learned."""
        step = self.step_seconds
        if self.samples == 0 or step is None:
            return [self.predict_at(0.0)] * horizon
        return [self.predict_at(self.last_t + h * step) for h in range(1, horizon + 1)]

    def residual(self, t: float, value: float) -> float:
        return value - self.predict_at(t)

    def learn(self, t: float, value: float) -> None:
        self._step.observe(t)
        step = self.step_seconds
        if self.samples == 0 or step is None:
            self.fast_level = self.slow_level = value
            self.first_t = self.first_t if self.first_t is not None else t
            self.last_t = t
            self.samples += 1
            return
        error = value - self.predict_at(t)
        if self.scale.ready:
            limit = self.huber_k * self.scale.sigma
            clipped = max(-limit, min(limit, error))
        else:
            clipped = error
        self.scale.update(error, _rate_for_halflife(step, self.scale_halflife_seconds))
        cleaned = self.predict_at(t) + clipped
        deseasonalized = cleaned - self._season(t)
        self.fast_level += _rate_for_halflife(step, self.fast_halflife_seconds) * (
            deseasonalized - self.fast_level
        )
        self.slow_level += _rate_for_halflife(step, self.slow_halflife_seconds) * (
            deseasonalized - self.slow_level
        )
        self.daily.update(t, cleaned - self.slow_level - self._weekly_value(t), step)
        self.weekly.update(t, cleaned - self.slow_level - self.daily.value(t), step)
        self.last_t = t
        self.samples += 1

    def _weekly_value(self, t: float) -> float:
        return self.weekly.value(t) if self._uses_weekly() else 0.0
