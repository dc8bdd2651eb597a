"""The gateway's models, fed samples by hand: scores, the own-history detector, forecasts."""

from __future__ import annotations

import math
import random

import pytest

from dispa.ai.gateway_models import MIN_FORECAST_STEPS, GatewayModels
from dispa.ai.signals import Sample
from dispa.config.ai import Ai

A, B = ("app", "a:80"), ("app", "b:80")


def features(rate: float, p50: float, error_ratio: float = 0.0) -> dict[str, float]:
    return {
        "rate": rate,
        "error_ratio": error_ratio,
        "latency_p50": p50,
        "latency_p99": p50 * 3,
        "active": 1.0,
    }


def sample(t: float, a: dict, b: dict) -> Sample:
    upstream = {"rate": a["rate"] + b["rate"]}
    return Sample(
        t=t,
        interval=1.0,
        endpoints={A: a, B: b},
        upstreams={"app": upstream},
        regions={"eu": {"rate": a["rate"]}},
        routes={"all": upstream},
    )


def test_scores_carry_their_parts_and_features():
    models = GatewayModels(Ai(forecast_step=1.0))
    verdict = None
    for t in range(10):
        verdict = models.learn(sample(float(t), features(50, 0.002), features(50, 0.05)))
    b = verdict.endpoints[B]
    assert b["score"] == b["peer_score"] == 1.0 and b["temporal_score"] == 0.0
    assert b["rate"] == 50 and b["latency_p99"] == pytest.approx(0.15)
    assert verdict.endpoints[A]["score"] == 0.0


def test_forecasts_appear_after_a_few_steps_per_upstream_region_and_route():
    models = GatewayModels(Ai(forecast_step=1.0, forecast_horizon=3))
    verdicts = [
        models.learn(sample(float(t), features(40, 0.002), features(60, 0.002)))
        for t in range(MIN_FORECAST_STEPS + 3)
    ]
    assert verdicts[MIN_FORECAST_STEPS - 1].forecasts["upstreams"] == {}
    last = verdicts[-1]
    assert set(last.forecasts) == {"upstreams", "regions", "routes"}
    forecast = last.forecasts["upstreams"]["app"]
    assert len(forecast) == 3 and all(abs(v - 100.0) < 1.0 for v in forecast)
    assert abs(last.forecasts["regions"]["eu"][0] - 40.0) < 1.0
    assert last.recent["routes"]["all"] == 100.0


def test_the_own_history_detector_scores_each_step_after_its_warm_up_and_holds_it():
    models = GatewayModels(Ai(detector_warmup=50.0, forecast_step=1.0))
    rng = random.Random(3)
    for t in range(150):
        latency = 0.010 * (1 + 0.05 * rng.random())
        models.learn(sample(float(t), features(50, latency), features(50, latency)))
    # Both endpoints slow down together: no peer difference, but a jump in their history,
    # scored once its step closes (at the next sample) and held until the next step.
    models.learn(sample(150.0, features(50, 0.2), features(50, 0.2)))
    verdict = models.learn(sample(151.0, features(50, 0.2), features(50, 0.2)))
    assert verdict.endpoints[A]["peer_score"] == 0.0
    assert verdict.endpoints[A]["temporal_score"] > 0.99
    assert verdict.endpoints[A]["score"] == verdict.endpoints[A]["temporal_score"]

    young = GatewayModels(Ai())  # default warm-up: a day
    for t in range(150):
        young.learn(sample(float(t), features(50, 0.01), features(50, 0.01)))
    young.learn(sample(150.0, features(50, 0.2), features(50, 0.2)))
    verdict = young.learn(sample(151.0, features(50, 0.2), features(50, 0.2)))
    assert verdict.endpoints[A]["temporal_score"] == 0.0

    off = GatewayModels(Ai(detector_warmup=50.0, forecast_step=1.0, history_detector=False))
    verdict = off.learn(sample(0.0, features(50, 0.2), features(50, 0.2)))
    assert verdict.endpoints[A]["temporal_score"] == 0.0 and off.detectors == {}


def test_an_idle_interval_is_not_learned_and_gone_endpoints_are_forgotten():
    models = GatewayModels(Ai(forecast_step=1.0))
    models.learn(sample(0.0, features(10, 0.01), features(10, 0.01)))
    idle = features(0, math.nan)
    verdict = models.learn(sample(1.0, idle, features(10, 0.01)))
    assert verdict.endpoints[A]["temporal_score"] == 0.0
    only_b = Sample(2.0, 1.0, {B: features(10, 0.01)}, {}, {}, {})
    models.learn(only_b)
    assert set(models.detectors) == {B}
    assert models.forecasts["upstreams"] == {}
