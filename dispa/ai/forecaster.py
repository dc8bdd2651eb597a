"""Online forecast of a request rate (or any load series) with daily and weekly seasonality.

Candidate models learn side by side and, per horizon, the one with the lowest recent error
answers (see `candidate_selection`): a robust Holt-Winters on a log-like scale for smooth,
noisy traffic; slot memories of yesterday and of last week for patterns that repeat to the
minute; and the last value, for series that wander more than they repeat. Measured in
docs/ai.md: river's own HoltWinters and SNARIMAX lose to copying yesterday on bursty
traffic (a burst teaches them a level that is wrong for hours); this beats both.

The class follows river's forecaster interface (`learn_one`, `forecast`), so river's own
time-series tools can drive it, and adds `learn(t, value)` for callers that have timestamps.
It does not subclass river's `Forecaster`: importing `river.time_series` costs a gateway
about 100 MB of memory and seconds at start, for a base class that adds no behaviour.
The gateway samples once a second; aggregate to one point a minute (`Resampler`) before
learning, so that a forecast step is a minute and the day has 1,440 slots.
"""

from __future__ import annotations

from dispa.ai.cadence import StepEstimator
from dispa.ai.candidate_selection import CandidateSelector
from dispa.ai.holt_winters import RobustHoltWinters
from dispa.ai.log_space import LogSpace
from dispa.ai.seasonal_memory import SeasonalMemory

DAY_SECONDS = 86_400.0
WEEK_SECONDS = 7 * DAY_SECONDS


class SeasonalForecaster:
    """`learn(t, value)` once per sample (t in seconds); `forecast(horizon)` for the next steps.

    The sampling interval is learned from the timestamps unless `step_seconds` is given;
    a forecast's step h is `h * step_seconds` after the last sample learned.
    """

    def __init__(
        self,
        step_seconds: float | None = None,
        tracked_horizons: int = 60,
        error_halflife_seconds: float = DAY_SECONDS,
    ) -> None:
        self.tracked_horizons = tracked_horizons
        self.error_halflife_seconds = error_halflife_seconds
        self._step = StepEstimator(step_seconds)
        self.smooth = LogSpace(RobustHoltWinters(step_seconds))
        self._yesterday: SeasonalMemory | None = None
        self._last_week: SeasonalMemory | None = None
        self._selector: CandidateSelector | None = None
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.last_value = 0.0

    @property
    def step_seconds(self) -> float | None:
        return self._step.step_seconds

    def _ensure_started(self, step: float) -> None:
        if self._selector is not None:
            return
        self._yesterday = SeasonalMemory(DAY_SECONDS, step, depth=1)
        self._last_week = SeasonalMemory(WEEK_SECONDS, step, depth=1)
        error_rate = 1.0 - 0.5 ** (step / self.error_halflife_seconds)
        self._selector = CandidateSelector(4, self.tracked_horizons, error_rate)

    def _candidates(self, t: float, selecting: bool) -> list[float | None]:
        """Each candidate's forecast for time `t`; None where it has nothing to say yet.

        Last week's values are scored from the second week on but chosen only from the
        third: one week of scores is too few to trust a model that sees each slot weekly.
        """
        span = self.last_t - self.first_t
        weekly_ready = span >= (2 * WEEK_SECONDS if selecting else WEEK_SECONDS)
        return [
            self.smooth.predict_at(t),
            self._yesterday.recall(t) if span >= DAY_SECONDS else None,
            self._last_week.recall(t) if weekly_ready else None,
            self.last_value,
        ]

    def _step_number(self, t: float) -> int:
        return round((t - self.first_t) / self.step_seconds)

    def learn(self, t: float, value: float) -> None:
        self._step.observe(t)
        if self.first_t is None:
            self.first_t = t
        step = self.step_seconds
        if step is not None:
            self._ensure_started(step)
            self._selector.observe(self._step_number(t), value)
        self.smooth.learn(t, value)
        if step is not None:
            for memory in (self._yesterday, self._last_week):
                memory.remember(t, value)
        self.last_t = t
        self.last_value = value
        if step is not None:
            origin = self._step_number(t)
            for h in range(1, self.tracked_horizons + 1):
                candidates = self._candidates(t + h * step, selecting=False)
                self._selector.expect(origin + h, h, candidates)

    def forecast(self, horizon: int, xs: list[dict] | None = None) -> list[float]:
        """Expected values of the next `horizon` steps after the last sample learned."""
        step = self.step_seconds
        if self._selector is None or step is None:
            return [self.smooth.predict_at(0.0)] * horizon
        return [
            self._selector.best(h, self._candidates(self.last_t + h * step, selecting=True))
            for h in range(1, horizon + 1)
        ]

    def predict_at(self, t: float) -> float:
        """Blended expectation for time `t`, at or after the last sample learned."""
        step = self.step_seconds
        if self._selector is None or step is None:
            return self.smooth.predict_at(t)
        horizon = max(1, round((t - self.last_t) / step))
        return self._selector.best(horizon, self._candidates(t, selecting=True))

    def learn_one(self, y: float, x: dict | None = None) -> None:
        """river's interface: `x["t"]` is the timestamp, else one step after the last."""
        if x is not None and "t" in x:
            t = float(x["t"])
        elif self.last_t is None:
            t = 0.0
        else:
            t = self.last_t + (self.step_seconds or 1.0)
        self.learn(t, y)
