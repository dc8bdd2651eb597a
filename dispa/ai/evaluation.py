"""Scoring detectors and forecasters against labels, as pure functions of lists.

Detection method (NAB's windows, a simpler scoring): the score goes through a hysteresis
flag; each off-to-on turn of the flag is an alarm. The first 15% of a series is probation,
where alarms are not counted. A labeled window is detected if an alarm falls inside it;
earliness is how much of the window is still ahead at the first such alarm (1.0 = at its
start, 0.0 = at its end). An alarm outside every window is a false positive; false
positives are reported per 1,000 points outside windows (after probation).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dispa.ai.hysteresis import (
    ALARM_HIGH,
    ALARM_LOW,
    ALARM_OFF_AFTER,
    ALARM_ON_AFTER,
    Hysteresis,
)

PROBATION_FRACTION = 0.15


@dataclass(frozen=True)
class FlagPolicy:
    """How scores become alarms: thresholds and run lengths of the hysteresis."""

    high: float = ALARM_HIGH
    low: float = ALARM_LOW
    on_after: int = ALARM_ON_AFTER
    off_after: int = ALARM_OFF_AFTER


@dataclass
class DetectionResult:
    windows: int = 0
    detected: int = 0
    earliness: list[float] = field(default_factory=list)
    false_positives: int = 0
    points_outside: int = 0
    alarms: int = 0

    @property
    def detection_rate(self) -> float:
        return self.detected / self.windows if self.windows else float("nan")

    @property
    def false_positives_per_1000(self) -> float:
        return 1000.0 * self.false_positives / self.points_outside if self.points_outside else 0.0

    @property
    def median_earliness(self) -> float:
        return statistics.median(self.earliness) if self.earliness else float("nan")

    def __add__(self, other: DetectionResult) -> DetectionResult:
        return DetectionResult(
            windows=self.windows + other.windows,
            detected=self.detected + other.detected,
            earliness=self.earliness + other.earliness,
            false_positives=self.false_positives + other.false_positives,
            points_outside=self.points_outside + other.points_outside,
            alarms=self.alarms + other.alarms,
        )


def flags_from_scores(scores: Iterable[float], policy: FlagPolicy) -> list[bool]:
    flag = Hysteresis(policy.high, policy.low, policy.on_after, policy.off_after)
    return [flag.update(score) for score in scores]


def alarm_indices(flags: Sequence[bool]) -> list[int]:
    """Indices where the flag turns on."""
    return [i for i, on in enumerate(flags) if on and (i == 0 or not flags[i - 1])]


def window_index_ranges(
    timestamps: Sequence[float], windows: Sequence[tuple[float, float]]
) -> list[tuple[int, int]]:
    """Each (start, end) time window as an inclusive (first, last) index range.

    Windows with no point inside are dropped."""
    ranges = []
    for start, end in windows:
        inside = [i for i, t in enumerate(timestamps) if start <= t <= end]
        if inside:
            ranges.append((inside[0], inside[-1]))
    return ranges


def evaluate_alarms(
    length: int,
    alarms: Sequence[int],
    windows: Sequence[tuple[int, int]],
    probation_fraction: float = PROBATION_FRACTION,
) -> DetectionResult:
    """Score alarm indices against inclusive index windows, by the method in the module doc."""
    first_counted = int(length * probation_fraction)
    counted_alarms = [i for i in alarms if i >= first_counted]
    result = DetectionResult(alarms=len(counted_alarms))
    inside_any = [False] * length
    for first, last in windows:
        for i in range(max(first, 0), min(last, length - 1) + 1):
            inside_any[i] = True
        if last < first_counted:
            continue  # the whole window is in probation
        result.windows += 1
        hits = [i for i in counted_alarms if first <= i <= last]
        if hits:
            result.detected += 1
            span = max(1, last - first)
            result.earliness.append(1.0 - (hits[0] - first) / span)
    result.points_outside = sum(1 for i in range(first_counted, length) if not inside_any[i])
    result.false_positives = sum(1 for i in counted_alarms if not inside_any[i])
    return result


def evaluate_scores(
    scores: Sequence[float],
    windows: Sequence[tuple[int, int]],
    policy: FlagPolicy,
    probation_fraction: float = PROBATION_FRACTION,
) -> DetectionResult:
    flags = flags_from_scores(scores, policy)
    return evaluate_alarms(len(scores), alarm_indices(flags), windows, probation_fraction)


# Forecasts ------------------------------------------------------------------------------


class Forecaster(Protocol):
    step_seconds: float | None

    def learn(self, t: float, value: float) -> None: ...

    def forecast(self, horizon: int) -> list[float]: ...


@dataclass
class ForecastComparison:
    """Absolute errors of a model and a baseline, by horizon, on the same targets."""

    model_errors: dict[int, list[float]]
    baseline_errors: dict[int, list[float]]

    def model_mae(self, horizon: int) -> float:
        return _mean(self.model_errors[horizon])

    def baseline_mae(self, horizon: int) -> float:
        return _mean(self.baseline_errors[horizon])

    def ratio(self, horizon: int) -> float:
        """Model MAE / baseline MAE: below 1 means the model wins."""
        return self.model_mae(horizon) / self.baseline_mae(horizon)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def compare_forecasts(
    timestamps: Sequence[float],
    values: Sequence[float],
    model: Forecaster,
    baseline: Forecaster,
    horizons: Sequence[int] = (1, 30),
    warmup_seconds: float = 2 * 86_400.0,
    every: int = 1,
) -> ForecastComparison:
    """Feed both forecasters the series; after the warm-up, at every `every`-th point,
    forecast and score each horizon against the value actually at that time (targets
    missing from the series are skipped for both)."""
    by_time = {round(t, 3): v for t, v in zip(timestamps, values, strict=True)}
    furthest = max(horizons)
    model_errors: dict[int, list[float]] = {h: [] for h in horizons}
    baseline_errors: dict[int, list[float]] = {h: [] for h in horizons}
    for i, (t, value) in enumerate(zip(timestamps, values, strict=True)):
        model.learn(t, value)
        baseline.learn(t, value)
        if t - timestamps[0] < warmup_seconds or i % every or model.step_seconds is None:
            continue
        model_forecast = model.forecast(furthest)
        baseline_forecast = baseline.forecast(furthest)
        for h in horizons:
            actual = by_time.get(round(t + h * model.step_seconds, 3))
            if actual is None:
                continue
            model_errors[h].append(abs(model_forecast[h - 1] - actual))
            baseline_errors[h].append(abs(baseline_forecast[h - 1] - actual))
    return ForecastComparison(model_errors, baseline_errors)


def geometric_mean(values: Iterable[float]) -> float:
    logs = [math.log(v) for v in values]
    return math.exp(sum(logs) / len(logs)) if logs else float("nan")
