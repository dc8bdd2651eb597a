"""Scores -> weight factors: hysteresis, the floor, gradual recovery, and reasons (pure)."""

from __future__ import annotations

import math

import pytest

from dispa.ai.steering import Steerer, explain
from dispa.config.ai import Steering

KEY = ("app", "10.0.0.3:80")
OTHER = ("app", "10.0.0.1:80")


def scored(score: float, **extra) -> dict[str, float]:
    return {
        "score": score,
        "peer_score": score,
        "latency_score": score,
        "error_score": 0.0,
        "temporal_score": 0.0,
        "latency_p50": 0.04,
        "peer_latency_p50": 0.002,
        "latency_p99": 0.08,
        "error_ratio": 0.0,
        "peer_error_ratio": 0.0,
        "rate": 50.0,
        "active": 2.0,
        **extra,
    }


def feed(steerer: Steerer, scores: list[float], start: float = 0.0, step: float = 1.0):
    decisions = []
    for index, score in enumerate(scores):
        t = start + index * step
        decisions += steerer.update({KEY: scored(score), OTHER: scored(0.0)}, t)
    return decisions


def test_flagged_after_on_after_high_scores_and_lowered_to_the_floor():
    steerer = Steerer(Steering(score_high=0.9, on_after=2, floor=0.2))
    assert feed(steerer, [0.95]) == []
    assert steerer.factors()[KEY] == 1.0
    (decision,) = feed(steerer, [0.95], start=1.0)
    assert decision.action == "lowered" and decision.factor == 0.2
    assert decision.endpoint == "10.0.0.3:80" and decision.upstream == "app"
    assert "median latency 40.0 ms vs peers' 2.0 ms" in decision.reason
    assert decision.details["score"] == 0.95 and decision.details["latency_p99"] == 0.08
    assert steerer.factors() == {KEY: 0.2, OTHER: 1.0}


def test_one_stray_high_score_does_nothing():
    steerer = Steerer(Steering(on_after=2))
    assert feed(steerer, [0.99, 0.1, 0.99, 0.1]) == []
    assert steerer.factors()[KEY] == 1.0


def test_weight_recovers_gradually_once_scores_fall_then_is_restored():
    settings = Steering(on_after=1, off_after=2, floor=0.2, recovery_per_second=0.2)
    steerer = Steerer(settings)
    feed(steerer, [1.0, 1.0])
    decisions = feed(steerer, [0.7, 0.1], start=2.0)  # between thresholds: still flagged
    assert steerer.factors()[KEY] == 0.2 and decisions == []
    (recovering,) = feed(steerer, [0.1], start=4.0)
    assert recovering.action == "recovering" and recovering.factor == 0.2
    factors = []
    decisions = []
    for t in range(5, 10):
        decisions += feed(steerer, [0.0], start=float(t))
        factors.append(steerer.factors()[KEY])
    assert factors == pytest.approx([0.4, 0.6, 0.8, 1.0, 1.0])
    assert [d.action for d in decisions] == ["restored"]
    assert "weight fully restored" in decisions[0].reason


def test_a_relapse_while_recovering_goes_straight_back_to_the_floor():
    steerer = Steerer(Steering(on_after=1, off_after=1, recovery_per_second=0.1))
    feed(steerer, [1.0, 0.0, 0.0, 0.0])
    assert steerer.factors()[KEY] == pytest.approx(0.4)
    (decision,) = feed(steerer, [1.0], start=4.0)
    assert decision.action == "lowered" and steerer.factors()[KEY] == 0.2


def test_steering_off_still_scores_and_decides_but_leaves_weights_alone():
    steerer = Steerer(Steering(enabled=False, on_after=1))
    (decision,) = feed(steerer, [1.0])
    assert decision.action.startswith("lowered (steering disabled")
    assert steerer.factors()[KEY] == 1.0
    assert steerer.document()[KEY]["state"] == "anomalous"


def test_document_shows_score_state_factor_and_nan_as_null():
    steerer = Steerer(Steering(on_after=1))
    steerer.update({KEY: scored(1.0, latency_p99=math.nan)}, 0.0)
    entry = steerer.document()[KEY]
    assert entry["state"] == "anomalous" and entry["weight_factor"] == 0.2
    assert entry["details"]["latency_p99"] is None


def test_endpoints_that_leave_are_forgotten():
    steerer = Steerer(Steering(on_after=1))
    feed(steerer, [1.0])
    steerer.update({OTHER: scored(0.0)}, 1.0)
    assert set(steerer.factors()) == {OTHER}


def test_explain_names_errors_and_the_own_history_detector():
    text = explain(
        scored(1.0, latency_score=0.0, error_score=1.0, error_ratio=0.4, temporal_score=0.9996),
        "anomalous",
    )
    assert "error ratio 0.40 vs peers' 0.00 (error score 1.00)" in text
    assert "own-history detector score 0.9996" in text
    assert explain({"score": 0.0}, "normal").endswith("no score above 0")
