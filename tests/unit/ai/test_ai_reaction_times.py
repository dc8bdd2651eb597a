"""How fast the production defaults react, as stated in docs/ai.md: scores from the real
models, steering from the real Steerer, one sample a second (no gateway: pure)."""

from __future__ import annotations

from dispa.ai.gateway_models import GatewayModels
from dispa.ai.signals import Sample
from dispa.ai.steering import Steerer
from dispa.config.ai import Ai

KEYS = [("app", f"10.0.0.{index}:80") for index in range(3)]


def features(p50: float, error_ratio: float = 0.0) -> dict[str, float]:
    return {
        "rate": 50.0,
        "error_ratio": error_ratio,
        "latency_p50": p50,
        "latency_p99": 2 * p50,
        "active": 1.0,
    }


def run(sick: list[dict]) -> list[tuple[str, float]]:
    """(state, factor) of the third endpoint after each of 10 healthy samples, then `sick`."""
    settings = Ai()
    models, steerer = GatewayModels(settings), Steerer(settings.steering)
    history = []
    healthy = features(0.002)
    for t, third in enumerate([healthy] * 10 + sick):
        endpoints = {KEYS[0]: healthy, KEYS[1]: healthy, KEYS[2]: third}
        verdict = models.learn(Sample(float(t), 1.0, endpoints, {}, {}, {}))
        steerer.update(verdict.endpoints, verdict.t)
        state = steerer.document()[KEYS[2]]
        history.append((state["state"], state["weight_factor"]))
    return history[10:]


def test_a_sudden_tenfold_slowdown_is_flagged_at_the_fourth_sample_restored_at_the_13th():
    states = run([features(0.02)] * 5 + [features(0.002)] * 14)
    assert [s for s, _ in states[:5]] == ["normal"] * 3 + ["anomalous"] * 2
    healed = states[5:]
    # One sample for the average to fall, three below score_low to clear, then 8 s of
    # recovery at 0.1 a second.
    assert [s for s, _ in healed[:5]] == ["anomalous"] * 4 + ["recovering"]
    assert [f for _, f in healed[4:13]] == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert healed[12][0] == "normal"


def test_failing_a_third_of_requests_is_flagged_at_the_fourth_sample():
    states = run([features(0.002, error_ratio=0.35)] * 5)
    assert [s for s, _ in states] == ["normal"] * 3 + ["anomalous"] * 2


def test_a_gradual_slowdown_is_flagged_once_it_is_about_three_times_the_peers():
    states = run([features(0.006)] * 3 + [features(0.010)] * 3 + [features(0.020)] * 5)
    assert [s for s, _ in states] == ["normal"] * 8 + ["anomalous"] * 3
