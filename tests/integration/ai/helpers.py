"""Real upstreams whose speed and error rate change at run time, behind a real ``dispa run``."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import PYTHON, Processes, Upstream, free_port, http_get, make_config

DEGRADABLE = Path(__file__).resolve().parent / "degradable.py"

# Test-only speed-ups are settings, not code paths: five samples a second, forecasts
# learned per second, and recovery in about two seconds instead of eight.
FAST_AI = {
    "sample_interval": "200ms",
    "forecast_step": "1s",
    "forecast_horizon": 5,
    "steering": {"recovery_per_second": 0.5},
}


def degradable_upstream(processes: Processes, name: str) -> Upstream:
    port = free_port()
    argv = [PYTHON, str(DEGRADABLE), "--port", str(port), "--name", name]
    upstream = Upstream(processes.start(argv, f"degradable-{name}"), name, port, "/admin/stats")
    upstream.wait_ready()
    return upstream


def degrade(upstream: Upstream, *, delay_ms: float = 0, error_percent: float = 0) -> None:
    path = f"/admin/degrade?delay_ms={delay_ms}&error_percent={error_percent}"
    status, body = http_get(upstream.url(path), method="POST")
    assert status == 200, body
    assert json.loads(body)["delay_ms"] == delay_ms


def ai_config(upstreams: list[Upstream], **upstream_fields) -> dict:
    return make_config(
        upstreams=[
            {
                "name": "app",
                "lb": "round_robin",
                "endpoints": [{"address": u.address} for u in upstreams],
                # Steering alone is under test: outlier ejection would take the endpoint out.
                "outlier": {"consecutive_5xx": 0, "consecutive_failures": 0},
                "retry": {"attempts": 1},
                **upstream_fields,
            }
        ],
        routes=[{"name": "all", "match": {"path_prefix": "/"}, "upstream": "app"}],
        ai=FAST_AI,
    )
