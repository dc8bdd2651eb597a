from __future__ import annotations

import pytest

from dispa.ai.calibration import TailCalibrator
from dispa.ai.detector import AnomalyDetector
from dispa.ai.hysteresis import Hysteresis
from dispa.ai.robust_scale import RobustScale
from tests.unit.ai.ai_series import POINTS_PER_DAY, daily_series

ONSET = 4 * POINTS_PER_DAY  # anomalies start on day five, well after the warm-up


def run(timestamps, values):
    detector, flag = AnomalyDetector(), Hysteresis()
    scores, flags = [], []
    for t, value in zip(timestamps, values, strict=True):
        score = detector.score_one(t, value)
        detector.learn(t, value)
        scores.append(score)
        flags.append(flag.update(score))
    return scores, flags


def first_flag_after_onset(flags):
    return next((i - ONSET for i in range(ONSET, len(flags)) if flags[i]), None)


@pytest.fixture(scope="module")
def quiet_day_cycle():
    return daily_series(days=6, noise=0.01)


def test_scores_are_in_unit_interval_and_zero_during_warm_up(quiet_day_cycle):
    scores, _ = run(*quiet_day_cycle)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(s == 0.0 for s in scores[:POINTS_PER_DAY])


def test_quiet_on_a_smooth_daily_ramp(quiet_day_cycle):
    scores, flags = run(*quiet_day_cycle)
    assert not any(flags)
    # Quiet, yet not numb: the scores do move with the noise.
    assert max(scores) > 0.5


@pytest.mark.parametrize("seed", [1, 2])
def test_flags_a_level_shift_within_two_points(seed):
    timestamps, values = daily_series(days=6, noise=0.01, seed=seed)
    shifted = [v * 1.5 if i >= ONSET else v for i, v in enumerate(values)]
    _, flags = run(timestamps, shifted)
    assert not any(flags[:ONSET])
    assert first_flag_after_onset(flags) <= 1


def test_flags_a_single_spike_on_the_spot():
    timestamps, values = daily_series(days=6, noise=0.01)
    spiked = [v * 3 if i == ONSET else v for i, v in enumerate(values)]
    _, flags = run(timestamps, spiked)
    assert not any(flags[:ONSET])
    assert first_flag_after_onset(flags) == 0


def test_flags_a_gradual_latency_increase_within_30_points():
    # +0.5% a point: after 30 points (2.5 hours) latency is 15% above its usual value.
    timestamps, values = daily_series(days=6, noise=0.01)
    drifting = [v * (1 + 0.005 * max(0, i - ONSET)) for i, v in enumerate(values)]
    _, flags = run(timestamps, drifting)
    assert not any(flags[:ONSET])
    assert first_flag_after_onset(flags) <= 30


def test_a_daily_pattern_that_repeats_is_not_an_anomaly():
    # A nightly job: a sharp burst at the same five minutes every day.
    timestamps, values = daily_series(days=8, noise=0.01)
    bursty = [v * 4 if i % POINTS_PER_DAY == 30 else v for i, v in enumerate(values)]
    scores, flags = run(timestamps, bursty)
    first_scored_burst = scores[POINTS_PER_DAY + 30]
    assert first_scored_burst > 0.9  # new the first time it is scored
    # Two days later the job is familiar: the flag stays down at its time.
    assert not any(flags[day * POINTS_PER_DAY + 30] for day in range(6, 8))
    assert scores[7 * POINTS_PER_DAY + 30] < first_scored_burst


def test_calibrator_grades_values_by_their_rarity():
    calibrator = TailCalibrator(history=1000, tail_quantile=0.98, log_scale=False)
    for i in range(1000):
        calibrator.add(float(i % 100))
    assert calibrator.exceedance(50.0) == pytest.approx(0.5)
    assert calibrator.exceedance(99.0) == pytest.approx(0.01)  # 1% of the history is 99
    beyond = [calibrator.exceedance(x) for x in (100.0, 110.0, 200.0)]
    assert beyond[0] > beyond[1] > beyond[2] > 0.0


def test_calibrator_never_calls_a_recurring_extreme_rare():
    calibrator = TailCalibrator(history=1000, tail_quantile=0.98)
    for i in range(1000):
        calibrator.add(1000.0 if i % 20 == 0 else 1.0)  # 5% of points are huge
    assert calibrator.exceedance(1000.0) == pytest.approx(0.05)


def test_robust_scale_shrugs_off_a_burst():
    scale = RobustScale(step_factor=0.05)
    for i in range(400):
        scale.update(1.0 if i % 2 else -1.0)
    before = scale.sigma
    for _ in range(5):
        scale.update(1e9)
    assert scale.sigma < before * 1.5
