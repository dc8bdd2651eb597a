"""A whole recorded run, crafted, through every checker and into the report's data."""

from __future__ import annotations

import json

from chaos import layout
from chaos.drills import find
from chaos.judge import judge
from chaos.load import Request
from chaos.monitor import Sample
from chaos.readback import _marker_of
from chaos.runner import DrillRun, plain_run, timeline
from chaos.sticky import StickyRequest
from chaos.writers import WriteOp


def crafted_run() -> tuple[DrillRun, dict]:
    run = DrillRun(find("leader-kill"), 10.0)
    run.edge_requests = [Request(i * 0.05, "edge-eu", 200, 0.01) for i in range(200)]
    run.samples = [Sample(t / 5, "core-eu" if t < 20 else "core-us", {}) for t in range(50)]
    run.writes = [
        WriteOp("w0-0", 0, "core-eu", 1.0, 1.1, "ok", 2),
        WriteOp("w1-0", 1, "core-eu", 4.1, 4.2, "failed", None, "not connected"),
        WriteOp("w1-1", 1, "core-us", 4.3, 4.5, "ok", 3),
    ]
    run.events = [
        {"at": 4.0, "kind": "inject", "fault": "kill -9 leader", "leader_before": "core-eu"},
        {"at": 7.0, "kind": "heal", "fault": "kill -9 leader"},
    ]
    start = run.clock.wall(0) // 1
    for second in range(8):
        run.limited.windows[("core-us", start + second)] = (layout.RATE_LIMIT, 10)
    run.sticky = [StickyRequest("c1", t, "core-us", 200, "up-ap") for t in range(8)]
    history = {1: "initial", 2: "w0-0", 3: "w1-1"}
    final = {
        "histories": {"core-eu": history, "core-us": dict(history), "core-ap": dict(history)},
        "edges": {"edge-eu": {"revision": 3, "marker": "w1-1"}},
        "final_revision": 3,
        "final_marker": "w1-1",
    }
    return run, final


def test_a_good_run_passes_every_verdict_with_its_numbers():
    run, final = crafted_run()
    run.verdicts = judge(run, final)
    assert [v.name for v in run.verdicts if not v.passed] == []
    failover = next(v for v in run.verdicts if v.name == "failover")
    assert failover.numbers["new_leader"] == "core-us"
    assert failover.numbers["seconds_to_new_leader"] == 0.0
    assert failover.numbers["seconds_to_next_commit"] == 0.5


def test_a_lost_write_fails_durability_and_linearizability():
    run, final = crafted_run()
    final["histories"]["core-ap"] = {1: "initial", 2: "w0-0"}
    failed = {v.name for v in judge(run, final) if not v.passed}
    assert failed == {"acknowledged writes durable"}
    final["histories"] = {core: {1: "initial", 2: "w0-0"} for core in final["histories"]}
    failed = {v.name for v in judge(run, final) if not v.passed}
    assert {"acknowledged writes durable", "history linearizable"} <= failed


def test_the_report_data_is_json_with_a_timeline_per_second():
    run, final = crafted_run()
    run.final = final
    run.verdicts = judge(run, final)
    seconds = timeline(run)
    assert len(seconds) == 10
    assert seconds[0] == {"second": 0, "ok": 20, "failed": 0, "leader": "core-eu"}
    assert seconds[5]["leader"] == "core-us"
    data = json.loads(json.dumps(plain_run(run)))
    assert data["passed"] is True and data["drill"] == "leader-kill"
    assert data["final_revision"] == 3 and len(data["writes"]) == 3


def test_the_marker_is_read_from_the_marker_route():
    config = layout.shared_config({"eu": "10.0.0.1:9001"}, "w2-5")
    assert _marker_of(config) == "w2-5"
    assert _marker_of({"routes": []}) is None
