"""An endpoint scored against the other endpoints of its upstream (pure)."""

from __future__ import annotations

import math

import pytest

from dispa.ai.peer_score import PeerScorer
from dispa.config.ai import Steering

A, B, C = ("app", "a:80"), ("app", "b:80"), ("app", "c:80")
NAMES = (("a", A), ("b", B), ("c", C))


def features(rate=100.0, error_ratio=0.0, p50=0.002) -> dict[str, float]:
    return {
        "rate": rate,
        "error_ratio": error_ratio,
        "latency_p50": p50,
        "latency_p99": p50 * 2,
        "active": 1.0,
    }


def run(scorer: PeerScorer, samples: int, **per_endpoint) -> dict:
    scores = {}
    for _ in range(samples):
        current = {key: per_endpoint.get(name, features()) for name, key in NAMES}
        scores = scorer.score(current, 1.0)
    return scores


def test_equal_endpoints_score_zero_even_when_all_slow_down_together():
    scorer = PeerScorer(Steering())
    scores = run(scorer, 5)
    assert {key: s["peer_score"] for key, s in scores.items()} == {A: 0.0, B: 0.0, C: 0.0}
    slow = features(p50=0.2)
    scores = run(scorer, 10, a=slow, b=slow, c=slow)
    assert max(s["peer_score"] for s in scores.values()) == 0.0


def test_an_endpoint_slow_ratio_times_slower_than_its_peers_scores_one():
    scorer = PeerScorer(Steering(slow_ratio=3.0, smoothing_samples=0.5))
    scores = run(scorer, 10, c=features(p50=0.03))  # peers at 2 ms count as the 5 ms floor
    assert scores[C]["latency_score"] == 1.0 and scores[C]["peer_score"] == 1.0
    assert scores[A]["peer_score"] == 0.0
    scores = run(scorer, 10, c=features(p50=0.005 * math.sqrt(3)))
    assert scores[C]["latency_score"] == pytest.approx(0.5, abs=0.01)


def test_sub_floor_jitter_between_fast_endpoints_scores_nothing():
    scorer = PeerScorer(Steering())
    scores = run(scorer, 10, a=features(p50=0.0005), c=features(p50=0.004))
    assert scores[C]["latency_score"] == 0.0


def test_excess_errors_over_the_peers_score_in_proportion():
    scorer = PeerScorer(Steering(error_excess=0.2, smoothing_samples=0.5))
    scores = run(scorer, 10, c=features(error_ratio=0.1))
    assert scores[C]["error_score"] == pytest.approx(0.5, abs=0.01)
    scores = run(scorer, 10, c=features(error_ratio=0.5))
    assert scores[C]["error_score"] == 1.0 and scores[C]["error_ratio"] == pytest.approx(0.5)
    assert scores[C]["peer_error_ratio"] == 0.0


def test_scores_move_gradually_with_smoothing():
    scorer = PeerScorer(Steering(smoothing_samples=2.0))
    run(scorer, 5)
    first = run(scorer, 1, c=features(p50=0.02))[C]["latency_score"]
    later = run(scorer, 6, c=features(p50=0.02))[C]["latency_score"]
    assert 0 < first < later == 1.0


def test_alone_or_without_traffic_there_is_nothing_to_compare():
    scorer = PeerScorer(Steering())
    alone = scorer.score({A: features(p50=1.0, error_ratio=1.0)}, 1.0)
    assert alone[A]["peer_score"] == 0.0 and math.isnan(alone[A]["peer_latency_p50"])
    idle = {"rate": 0.0, "error_ratio": 0.0, "latency_p50": math.nan, "latency_p99": math.nan}
    fresh = PeerScorer(Steering())
    scores = fresh.score({A: {**idle, "active": 0.0}, B: features(error_ratio=1.0)}, 1.0)
    assert scores[B]["error_score"] == 0.0  # its only peer has no error ratio to compare
    assert math.isnan(scores[A]["latency_p50"])


def test_endpoints_that_leave_are_forgotten():
    scorer = PeerScorer(Steering())
    run(scorer, 3)
    scorer.score({A: features(), B: features()}, 1.0)
    assert set(scorer._state) == {A, B}


def test_a_large_pool_compares_with_the_pool_median_in_one_pass():
    scorer = PeerScorer(Steering(smoothing_samples=0.5))
    pool = {("big", f"10.0.0.{index}:80"): features() for index in range(40)}
    slow = ("big", "10.0.0.7:80")
    pool[slow] = features(p50=0.05)
    for _ in range(5):
        scores = scorer.score(pool, 1.0)
    assert scores[slow]["latency_score"] == 1.0
    assert max(s["peer_score"] for key, s in scores.items() if key != slow) == 0.0
