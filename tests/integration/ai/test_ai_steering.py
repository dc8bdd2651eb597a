"""AI steering with real processes: an endpoint that turns slow or starts failing loses
traffic within seconds and gets it back once it heals; a smooth ramp flags nothing.

Three ``degradable`` upstreams behind ``dispa run`` (round robin, five samples a second).
Shares are measured by counting which upstream answered each request.
"""

from __future__ import annotations

import time
from pathlib import Path

from conftest import Processes
from support import wait_until

from ai.helpers import ai_config, degradable_upstream, degrade
from ai.load import Load

# Stated in docs/ai.md: flagged within this many seconds of the endpoint being clearly
# worse than its peers (smoothing + on_after samples at 0.2 s, plus a tick of slack).
FLAG_WITHIN = 4.0
RECOVER_WITHIN = 8.0


def endpoint_state(gateway, address: str) -> dict:
    for entry in gateway.admin_json("/api/v1/ai")["endpoints"]:
        if entry["address"] == address:
            return entry
    raise AssertionError(f"{address} not in /api/v1/ai")


def _degrade_and_heal(processes: Processes, tmp_path: Path, steps: list[dict]) -> None:
    upstreams = [degradable_upstream(processes, name) for name in ("a", "b", "c")]
    gateway = processes.gateway(ai_config(upstreams), tmp_path)
    sick = upstreams[2]
    with Load(gateway.url("/"), lambda t: 150.0, duration=18.0) as load:
        time.sleep(2.0)
        baseline = load.shares(0.5, load.elapsed())
        assert baseline.get("c", 0) > 0.25, baseline
        assert endpoint_state(gateway, sick.address)["state"] == "normal"
        first = load.elapsed()
        for step in steps:  # gradually worse, half a second a step
            degrade(sick, **step)
            time.sleep(0.5)
        wait_until(
            lambda: endpoint_state(gateway, sick.address)["state"] == "anomalous",
            timeout=FLAG_WITHIN,
            interval=0.1,
            what="the degraded endpoint to be flagged",
        )
        flagged = load.elapsed()
        state = endpoint_state(gateway, sick.address)
        assert state["weight_factor"] == 0.2
        time.sleep(2.5)
        lowered = load.shares(flagged + 0.3, load.elapsed())
        # Round robin passes a 0.2-factor endpoint's turn on 4 times in 5: about 9 %.
        assert lowered.get("c", 0) < 0.16, lowered
        document = gateway.admin_json("/api/v1/ai")
        decision = next(d for d in document["decisions"] if d["endpoint"] == sick.address)
        assert decision["action"] == "lowered"
        assert "score" in decision["reason"] and decision["details"]["score"] >= 0.9
        assert "AI steering: endpoint " + sick.address in gateway.stderr()

        degrade(sick)  # healed
        healed = load.elapsed()
        wait_until(
            lambda: endpoint_state(gateway, sick.address)["state"] == "normal",
            timeout=RECOVER_WITHIN,
            interval=0.1,
            what="the healed endpoint to get its full weight back",
        )
        restored = load.elapsed()
        time.sleep(2.5)
        after = load.shares(restored, load.elapsed())
        assert after.get("c", 0) > 0.25, after
        actions = [
            d["action"]
            for d in gateway.admin_json("/api/v1/ai")["decisions"]
            if d["endpoint"] == sick.address
        ]
        assert actions == ["lowered", "recovering", "restored"]
    assert load.failures == 0
    print(
        f"flagged {flagged - first:.1f} s after the first step, restored "
        f"{restored - healed:.1f} s after healing"
    )
    # Every other endpoint was left alone.
    for upstream in upstreams[:2]:
        assert endpoint_state(gateway, upstream.address)["weight_factor"] == 1.0
    assert gateway.metric("dispa_ai_steering_decisions_total") == 3
    assert gateway.metric("dispa_ai_samples_dropped_total") == 0


def test_an_endpoint_turning_slow_loses_traffic_and_gets_it_back(
    processes: Processes, tmp_path: Path
) -> None:
    _degrade_and_heal(
        processes, tmp_path, [{"delay_ms": 5}, {"delay_ms": 10}, {"delay_ms": 20}, {"delay_ms": 40}]
    )


def test_an_endpoint_failing_gradually_loses_traffic_and_gets_it_back(
    processes: Processes, tmp_path: Path
) -> None:
    _degrade_and_heal(
        processes,
        tmp_path,
        [{"error_percent": 10}, {"error_percent": 25}, {"error_percent": 50}],
    )
