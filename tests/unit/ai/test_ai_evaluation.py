from __future__ import annotations

import pytest

from dispa.ai.evaluation import (
    FlagPolicy,
    alarm_indices,
    compare_forecasts,
    evaluate_alarms,
    evaluate_scores,
    flags_from_scores,
    geometric_mean,
    window_index_ranges,
)


def test_alarms_are_the_off_to_on_turns_of_the_flag():
    assert alarm_indices([False, True, True, False, True]) == [1, 4]
    assert alarm_indices([True, False]) == [0]


def test_window_times_become_inclusive_index_ranges():
    timestamps = [0.0, 10.0, 20.0, 30.0, 40.0]
    assert window_index_ranges(timestamps, [(10.0, 30.0), (41.0, 50.0)]) == [(1, 3)]


def test_detection_earliness_and_false_positives_on_a_hand_made_case():
    # 100 points, probation = first 15; windows 40..59 and 80..89.
    windows = [(40, 59), (80, 89)]
    alarms = [5, 20, 45, 50, 95]  # 5: in probation; 20, 95: false; 45, 50: one hit
    result = evaluate_alarms(100, alarms, windows)
    assert result.windows == 2
    assert result.detected == 1
    assert result.detection_rate == 0.5
    assert result.earliness == [pytest.approx(1 - 5 / 19)]
    assert result.false_positives == 2
    assert result.points_outside == 100 - 15 - 30
    assert result.false_positives_per_1000 == pytest.approx(2000 / 55)


def test_windows_entirely_in_probation_are_not_counted():
    result = evaluate_alarms(100, [12], [(10, 14)])
    assert result.windows == 0 and result.false_positives == 0


def test_scores_go_through_the_hysteresis_before_scoring():
    scores = [0.0] * 20 + [1.0, 0.0, 1.0, 1.0] + [0.0] * 16
    policy = FlagPolicy(high=0.9, low=0.5, on_after=2, off_after=1)
    assert alarm_indices(flags_from_scores(scores, policy)) == [23]
    result = evaluate_scores(scores, [(22, 30)], policy)
    assert result.detected == 1
    assert result.earliness == [pytest.approx(1 - 1 / 8)]


def test_results_add_up_across_files():
    a = evaluate_alarms(100, [50], [(40, 60)])
    b = evaluate_alarms(100, [20], [(40, 60)])
    total = a + b
    assert (total.windows, total.detected, total.false_positives) == (2, 1, 1)


class Constant:
    def __init__(self, value):
        self.value = value
        self.step_seconds = None

    def learn(self, t, value):
        self.step_seconds = 1.0

    def forecast(self, horizon):
        return [self.value] * horizon


def test_forecast_comparison_scores_both_models_on_the_same_targets():
    timestamps = [float(i) for i in range(10)]
    values = [1.0] * 10
    result = compare_forecasts(
        timestamps, values, Constant(1.5), Constant(3.0), horizons=(1, 2), warmup_seconds=0
    )
    # Origins 0..7 have both targets in the series; 8 has one, 9 none.
    assert len(result.model_errors[1]) == 9 and len(result.model_errors[2]) == 8
    assert result.model_mae(1) == 0.5 and result.baseline_mae(2) == 2.0
    assert result.ratio(1) == 0.25


def test_geometric_mean():
    assert geometric_mean([0.5, 2.0]) == pytest.approx(1.0)
