from __future__ import annotations

from dispa.ai.candidate_selection import CandidateSelector
from dispa.ai.evaluation import compare_forecasts
from dispa.ai.forecaster import SeasonalForecaster
from dispa.ai.seasonal_memory import SeasonalMemory
from dispa.ai.seasonal_naive import SeasonalNaiveForecaster
from dispa.ai.seasonal_profile import SeasonalProfile
from dispa.ai.synthetic import daily_request_rate
from tests.unit.ai.ai_series import STEP, daily_series


def test_beats_seasonal_naive_on_noisy_daily_traffic_at_1_and_30_steps():
    timestamps, values = daily_request_rate(days=8, seed=11)
    result = compare_forecasts(
        timestamps, values, SeasonalForecaster(), SeasonalNaiveForecaster(), every=3
    )
    # Counting noise and bursts make yesterday's value a poor guess; the model should cut
    # the error by a clear margin, not by luck.
    assert result.ratio(1) < 0.8
    assert result.ratio(30) < 0.9


def test_learns_the_step_and_forecasts_the_daily_shape_ahead():
    timestamps, values = daily_series(days=4, noise=0.0)
    model = SeasonalForecaster()
    for t, value in zip(timestamps, values, strict=True):
        model.learn(t, value)
    assert model.step_seconds == STEP
    truth = daily_series(days=4.5, noise=0.0)[1][len(values) : len(values) + 60]
    forecast = model.forecast(60)
    assert len(forecast) == 60
    assert max(abs(f - v) for f, v in zip(forecast, truth, strict=True)) < 2.0


def test_river_style_learn_one_uses_the_timestamp_in_x():
    model = SeasonalForecaster()
    for i in range(40):
        model.learn_one(10.0, {"t": 1000.0 + 60.0 * i})
    assert model.step_seconds == 60.0
    assert model.forecast(3) == [10.0, 10.0, 10.0]


def test_seasonal_naive_forecasts_the_value_one_day_earlier():
    timestamps, values = daily_series(days=2, noise=0.05)
    naive = SeasonalNaiveForecaster()
    for t, value in zip(timestamps[:-10], values[:-10], strict=True):
        naive.learn(t, value)
    expected = values[-10 - 288 : -288]
    assert naive.forecast(10) == expected


def test_seasonal_memory_recalls_the_median_of_the_last_days():
    memory = SeasonalMemory(period_seconds=86_400.0, step_seconds=3600.0, depth=3)
    for day, value in enumerate([1.0, 50.0, 3.0, 4.0]):
        memory.remember(day * 86_400.0 + 7200.0, value)
    assert memory.recall(9 * 86_400.0 + 7200.0) == 4.0  # median of 50, 3, 4
    assert memory.recall(3600.0) is None


def test_seasonal_profile_interpolates_between_knots():
    profile = SeasonalProfile(period_seconds=100.0, knots=4, memory_periods=1.0)
    profile.update(0.0, 8.0, step_seconds=25.0)
    profile.update(25.0, 4.0, step_seconds=25.0)
    assert profile.value(12.5) == 6.0
    assert profile.coverage() == 0.5


def test_candidate_selector_picks_the_candidate_with_lower_error_per_horizon():
    selector = CandidateSelector(candidates=2, horizons=2, error_rate=0.5)
    for step in range(10):
        # Candidate 0 is right one step ahead, candidate 1 two steps ahead.
        selector.expect(step, 1, [float(step), step + 5.0])
        selector.expect(step, 2, [step + 5.0, float(step)])
        selector.observe(step, float(step))
    assert selector.best(1, [1.0, 2.0]) == 1.0
    assert selector.best(2, [1.0, 2.0]) == 2.0
    assert selector.best(1, [None, 2.0]) == 2.0
