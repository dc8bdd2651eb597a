"""Forecasts with real processes: a smooth ramp in load flags no endpoint, is forecast,
exported as metrics, and raises a capacity alert once it heads above ``capacity_rps``."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import Processes
from support import wait_until

from ai.helpers import ai_config, degradable_upstream
from ai.load import Load

CAPACITY = 120.0


def test_a_smooth_ramp_flags_nothing_and_its_forecast_raises_a_capacity_alert(
    processes: Processes, tmp_path: Path
) -> None:
    upstreams = [degradable_upstream(processes, name) for name in ("a", "b", "c")]
    gateway = processes.gateway(ai_config(upstreams, capacity_rps=CAPACITY), tmp_path)
    # 20 -> 220 requests/s over 12 s: a daily ramp, compressed.
    with Load(gateway.url("/"), lambda t: 20.0 + 200.0 * min(t, 12.0) / 12.0, duration=13.0):
        wait_until(
            lambda: gateway.admin_json("/api/v1/ai")["alerts"],
            timeout=14.0,
            interval=0.2,
            what="a capacity alert while the ramp heads above capacity_rps",
        )
        document = gateway.admin_json("/api/v1/ai")
        alert = document["alerts"][0]
        assert alert["upstream"] == "app" and alert["capacity_rps"] == CAPACITY
        assert alert["forecast_rps"] > CAPACITY
        assert gateway.metric("dispa_ai_capacity_alert", upstream="app") == 1.0
        assert "AI capacity alert: upstream app" in gateway.stderr()
        forecast = gateway.metric(
            "dispa_ai_forecast_requests_per_second", upstream="app", horizon="1s"
        )
        assert forecast > CAPACITY * 0.7, forecast
        time.sleep(1.0)
    document = gateway.admin_json("/api/v1/ai")
    assert document["decisions"] == []
    for entry in document["endpoints"]:
        assert entry["state"] == "normal" and entry["weight_factor"] == 1.0, entry
    learner = document["learner"]
    assert learner["running"] and learner["samples_dropped"] == 0
    assert learner["model_restarts"] == 0
    # Samples every 200 ms from the start: the learner kept up with the sampler (how many
    # there were depends on how soon the alert came).
    assert learner["samples_learned"] >= 20, learner
    assert learner["samples_learned"] >= learner["samples_submitted"] - 5, learner
    forecasts = document["forecasts"]
    assert set(forecasts) == {"upstreams", "regions", "routes"}
    assert [h["in_seconds"] for h in forecasts["upstreams"]["app"]["forecast_rps"]] == [
        1.0,
        2.0,
        3.0,
        4.0,
        5.0,
    ]
    assert "all" in forecasts["routes"]


def test_with_workers_each_one_learns_and_the_supervisor_shows_them_all(
    processes: Processes, tmp_path: Path
) -> None:
    upstreams = [degradable_upstream(processes, name) for name in ("a", "b")]
    gateway = processes.gateway(
        ai_config(upstreams), tmp_path, args=("--workers", "2"), ready=False
    )
    gateway.wait_ready(timeout=30.0)  # three processes starting on two shared cores
    with Load(gateway.url("/"), lambda t: 50.0, duration=3.0):
        document = wait_until(
            lambda: (
                (d := gateway.admin_json("/api/v1/ai"))["workers"]
                and len(d["workers"]) == 2
                and all(w["learner"]["samples_learned"] > 0 for w in d["workers"])
                and d
            ),
            timeout=10.0,
            interval=0.2,
            what="both workers to publish their AI state",
        )
    assert document["enabled"]
    for worker in document["workers"]:
        assert {e["address"] for e in worker["endpoints"]} == {u.address for u in upstreams}
