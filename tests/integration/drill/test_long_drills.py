"""The other drills, run with `make drill` or `pytest -m slow`: region loss and isolation,
one-way partitions, upstream death and slowness, lossy links."""

from __future__ import annotations

import json

import pytest

from chaos.cli import run_one
from chaos.drills import DRILLS

LONG = [drill for drill in DRILLS if not drill.quick]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("spec", LONG, ids=[d.name for d in LONG])
def test_long_drill_passes_every_check(spec, tmp_path):
    lines: list[str] = []
    report = run_one(spec, 30.0, tmp_path, lines.append)
    failed = [v for v in report["verdicts"] if not v["passed"]]
    assert report.get("error") is None, "\n".join(lines)
    assert not failed, json.dumps(failed, indent=1) + "\n" + "\n".join(lines)
    assert report["passed"]
