"""The `ai` section and `capacity_rps`: defaults, and errors that name the bad field."""

from __future__ import annotations

import pytest

from dispa.config.cluster import SharedConfig, gateway_for_node
from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway


def config(**extra) -> dict:
    return {
        "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
        "upstreams": [{"name": "app", "endpoints": [{"address": "127.0.0.1:9001"}]}],
        "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
        **extra,
    }


def only_problem(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        build_gateway(data, "gateway.yaml")
    (problem,) = caught.value.problems
    return problem


def test_ai_is_on_by_default_with_production_settings():
    ai = build_gateway(config()).ai
    assert ai.enabled and ai.sample_interval == 1.0 and ai.forecast_step == 60.0
    assert ai.steering.floor == 0.2 and ai.steering.recovery_per_second == 0.1
    assert build_gateway(config()).upstreams[0].capacity_rps is None


def test_durations_and_nested_settings_parse():
    ai = build_gateway(
        config(ai={"sample_interval": "200ms", "steering": {"floor": 0.5, "on_after": 3}})
    ).ai
    assert ai.sample_interval == 0.2 and ai.steering.floor == 0.5 and ai.steering.on_after == 3


@pytest.mark.parametrize(
    ("ai", "path", "words"),
    [
        ({"steering": {"floor": 0}}, "ai.steering.floor", "greater than 0"),
        ({"steering": {"floor": 1.5}}, "ai.steering.floor", "less than or equal to 1"),
        (
            {"steering": {"score_low": 0.95}},
            "ai.steering.score_low",
            "score_low (0.95) must not be above",
        ),
        ({"steering": {"slow_ratio": 1}}, "ai.steering.slow_ratio", "greater than 1"),
        ({"sample_interval": "0s"}, "ai.sample_interval", "must be longer than 0"),
        ({"forecast_step": "1s", "sample_interval": "2s"}, "ai.forecast_step", "not be shorter"),
        ({"queue_size": 0}, "ai.queue_size", "greater than or equal to 1"),
        ({"sample_rate": 1}, "ai.sample_rate", "unknown field"),
    ],
)
def test_bad_ai_settings_name_their_path(ai, path, words):
    problem = only_problem(config(ai=ai))
    assert path in problem and words in problem, problem


def test_capacity_must_be_positive():
    data = config()
    data["upstreams"][0]["capacity_rps"] = 0
    problem = only_problem(data)
    assert "upstreams[0].capacity_rps" in problem or "upstreams.0.capacity_rps" in problem


def test_cores_and_edges_carry_the_shared_ai_section():
    shared = SharedConfig.model_validate(
        {"routes": config()["routes"], "upstreams": config()["upstreams"], "ai": {"enabled": False}}
    )
    node = build_gateway(config())
    assert gateway_for_node(node, shared).ai.enabled is False


def test_every_problem_of_the_section_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        build_gateway(
            config(
                ai={
                    "sample_interval": "2s",
                    "forecast_step": "1s",
                    "steering": {"floor": 0, "score_low": 0.95},
                }
            )
        )
    problems = "\n".join(caught.value.problems)
    for path in ("ai.forecast_step", "ai.steering.floor", "ai.steering.score_low"):
        assert path in problems, problems
