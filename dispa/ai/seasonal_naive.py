"""The seasonal-naive forecast: the value one season (a day) earlier, the baseline to beat."""

from __future__ import annotations

from dispa.ai.cadence import StepEstimator
from dispa.ai.seasonal_memory import SeasonalMemory

DAY_SECONDS = 86_400.0


class SeasonalNaiveForecaster:
    """Same API as `SeasonalForecaster`; forecasts the last value seen in the same daily slot."""

    def __init__(self, step_seconds: float | None = None, period_seconds: float = DAY_SECONDS):
        self._step = StepEstimator(step_seconds)
        self.period_seconds = period_seconds
        self._memory: SeasonalMemory | None = None
        self.last_t: float | None = None
        self.last_value = 0.0

    @property
    def step_seconds(self) -> float | None:
        return self._step.step_seconds

    def learn(self, t: float, value: float) -> None:
        self._step.observe(t)
        if self._memory is None and self._step.step_seconds is not None:
            self._memory = SeasonalMemory(self.period_seconds, self._step.step_seconds, depth=1)
            if self.last_t is not None:
                self._memory.remember(self.last_t, self.last_value)
        if self._memory is not None:
            self._memory.remember(t, value)
        self.last_t, self.last_value = t, value

    def forecast(self, horizon: int) -> list[float]:
        step = self._step.step_seconds
        if self._memory is None or step is None:
            return [self.last_value] * horizon
        forecasts = []
        for h in range(1, horizon + 1):
            recalled = self._memory.recall(self.last_t + h * step)
            # Before a full season has passed, the last value is the only guess there is.
            forecasts.append(self.last_value if recalled is None else recalled)
        return forecasts
