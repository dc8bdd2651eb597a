"""Streaming anomaly score in [0, 1] for one series (an endpoint's rate, errors, latency).

For each point, seven raw signals, each a different way of being anomalous:

- `spike`: |surprise|, the residual against the model that explains the point best
  (see `expectations`), in standard deviations;
- `shift_fast`, `shift_slow`: |exponential mean of the signed surprise| over about 3 and 12
  points, for level shifts the models have not absorbed yet;
- `volatility`: exponential mean of |surprise| over about 12 points, for bursts of noise
  or a denser rain of spikes;
- `drift`: |exponential mean of the residual against the slow baseline| over about 12
  points, for a gradual rise (a latency creeping up) that the fast level follows;
- `high`, `low`: the value itself against the values seen, for a new high or low.

Each signal is turned into a tail probability by its own calibrator (its recent past), the
smallest is multiplied by the number of signals (Bonferroni: seven chances to look rare
should not make ordinary points alarming), and the score is 1 minus that. So 0.99 means
"rarer than 1 in 100 points by the strictest signal, after correction". Scores stay 0
during a warm-up (100 points and one day). The detector never sees labels and never looks
ahead; nothing in it was tuned per file. Thresholds and run lengths for the alarm flag are
in `hysteresis`.
"""

from __future__ import annotations

from dispa.ai.calibration import TailCalibrator
from dispa.ai.expectations import Expectations

WARMUP_POINTS = 100
# Until a whole day has been seen, the seasonal models cannot explain the day's shape and
# every new hour sets a new high: scores would be noise.
WARMUP_SECONDS = 86_400.0
HISTORY_POINTS = 2000
FAST_HALFLIFE_POINTS = 3.0
SLOW_HALFLIFE_POINTS = 12.0


def _rate(halflife_points: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife_points)


FAST_RATE = _rate(FAST_HALFLIFE_POINTS)
SLOW_RATE = _rate(SLOW_HALFLIFE_POINTS)
SIGNALS = ("spike", "shift_fast", "shift_slow", "volatility", "drift", "high", "low")


class AnomalyDetector:
    """`score_one(t, value)` then `learn(t, value)`, once per point, t in seconds."""

    def __init__(
        self,
        step_seconds: float | None = None,
        warmup_points: int = WARMUP_POINTS,
        warmup_seconds: float = WARMUP_SECONDS,
        history_points: int = HISTORY_POINTS,
    ) -> None:
        self.warmup_points = warmup_points
        self.warmup_seconds = warmup_seconds
        self.first_t: float | None = None
        self.expectations = Expectations(step_seconds)
        self.calibrators = {
            # The value's own scale is not in standard deviations: no log for its tail.
            name: TailCalibrator(history_points, log_scale=name not in ("high", "low"))
            for name in SIGNALS
        }
        self._shift_fast = 0.0
        self._shift_slow = 0.0
        self._volatility = 0.0
        self._drift = 0.0
        self.points = 0
        self._cached: tuple[float, float, dict[str, float] | None] | None = None

    def _signals(self, t: float, value: float) -> dict[str, float] | None:
        """Raw signals of a point, from the state before it is learned; None until ready."""
        if self._cached is not None and self._cached[:2] == (t, value):
            return self._cached[2]
        surprise = self.expectations.surprise(t, value)
        baseline = self.expectations.baseline_surprise(t, value)
        signals = None
        if surprise is not None:
            baseline = 0.0 if baseline is None else baseline
            signals = {
                "spike": abs(surprise),
                "shift_fast": abs(self._shift_fast + FAST_RATE * (surprise - self._shift_fast)),
                "shift_slow": abs(self._shift_slow + SLOW_RATE * (surprise - self._shift_slow)),
                "volatility": self._volatility + SLOW_RATE * (abs(surprise) - self._volatility),
                "drift": abs(self._drift + SLOW_RATE * (baseline - self._drift)),
                "high": value,
                "low": -value,
            }
        self._cached = (t, value, signals)
        return signals

    def score_one(self, t: float, value: float) -> float:
        """Anomaly score of a point in [0, 1], before learning it."""
        signals = self._signals(t, value)
        if signals is None or self._warming_up(t):
            return 0.0
        rarest = min(self.calibrators[name].exceedance(x) for name, x in signals.items())
        return max(0.0, 1.0 - rarest * len(signals))

    def _warming_up(self, t: float) -> bool:
        if self.points < self.warmup_points or self.first_t is None:
            return True
        return t - self.first_t < self.warmup_seconds

    def learn(self, t: float, value: float) -> None:
        if self.first_t is None:
            self.first_t = t
        signals = self._signals(t, value)
        if signals is not None:
            surprise = self.expectations.surprise(t, value)
            baseline = self.expectations.baseline_surprise(t, value) or 0.0
            self._shift_fast += FAST_RATE * (surprise - self._shift_fast)
            self._shift_slow += SLOW_RATE * (surprise - self._shift_slow)
            self._volatility += SLOW_RATE * (abs(surprise) - self._volatility)
            self._drift += SLOW_RATE * (baseline - self._drift)
            for name, x in signals.items():
                self.calibrators[name].add(x)
        self.expectations.learn(t, value)
        self.points += 1
        self._cached = None
