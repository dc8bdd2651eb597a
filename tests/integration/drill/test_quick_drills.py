"""The short drills, in the default test suite: each builds three regions and two edges in
network namespaces, runs the workload through a fault and its heal, and every checker's
verdict must pass. About 40 s each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.cli import run_one
from chaos.drills import DRILLS
from chaos.topology import STATE_DIR

QUICK = [drill for drill in DRILLS if drill.quick]
DURATION = 15.0


def namespaces() -> set[str]:
    from chaos import shell

    return {line.split()[0] for line in shell.run(["ip", "netns", "list"]).splitlines() if line}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("spec", QUICK, ids=[d.name for d in QUICK])
def test_quick_drill_passes_every_check(spec, tmp_path):
    before = namespaces()
    lines: list[str] = []
    report = run_one(spec, DURATION, tmp_path, lines.append)
    failed = [v for v in report["verdicts"] if not v["passed"]]
    assert report.get("error") is None, "\n".join(lines)
    assert not failed, json.dumps(failed, indent=1) + "\n" + "\n".join(lines)
    assert report["passed"]
    names = {v["name"] for v in report["verdicts"]}
    assert {
        "acknowledged writes durable",
        "revisions never fork",
        "history linearizable",
        "edges caught up",
        "edge availability",
        "failover",
        "rate-limit over-admission",
        "sessions stay sticky",
    } <= names
    numbers = {v["name"]: v["numbers"] for v in report["verdicts"]}
    # The workload really ran: writes were acknowledged, edges served, the limit bit.
    assert numbers["history linearizable"]["ok"] >= 10
    assert numbers["edge availability"]["requests"] >= 500
    assert numbers["rate-limit over-admission"]["refused"] > 0
    # Progress lines came out, the report is on disk, and nothing is left behind.
    assert any("fault:" in line for line in lines) and any("healed:" in line for line in lines)
    saved = json.loads(Path(report["report_json"]).read_text())
    assert saved["drill"] == spec.name and saved["timeline"]
    assert "<svg" in Path(report["report_html"]).read_text()
    prefix = next(line.split()[1].rstrip(":") for line in lines if line.startswith("topology"))
    assert not any(name.startswith(prefix) for name in namespaces())
    assert namespaces() <= before
    assert not (STATE_DIR / f"{prefix}.json").exists()
