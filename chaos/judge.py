"""Applies every checker to a finished run: the drill's expectations (leader, availability
target) and the documented bounds go in, verdicts come out."""

from __future__ import annotations

from chaos import layout
from chaos.checks.availability import check_availability
from chaos.checks.failover import check_failover
from chaos.checks.rate_limit import check_rate_limit
from chaos.checks.sticky import check_sticky
from chaos.checks.verdict import Verdict
from chaos.checks.writes import (
    check_durable,
    check_edges_converged,
    check_linearizable,
    check_no_fork,
)

MAX_ELECTION = 5.0  # seconds from the fault to a new leader
MAX_COMMIT = 10.0  # seconds from the fault to the next committed write


def judge(run, final: dict) -> list[Verdict]:
    """Every checker's verdict on one run (``chaos.runner.DrillRun``) and what the nodes
    held afterwards (``chaos.readback.settle_and_read``)."""
    spec = run.spec
    injects = [e for e in run.events if e["kind"] == "inject"]
    heals = [e for e in run.events if e["kind"] == "heal"]
    window = (injects[0]["at"], heals[-1]["at"]) if injects and heals else None
    histories = final["histories"]
    leader_history = max(histories.values(), key=len, default={})
    verdicts = [
        check_durable(run.writes, histories),
        check_no_fork(histories),
        check_linearizable(run.writes, leader_history),
        check_edges_converged(final["edges"], final["final_revision"], final["final_marker"]),
        check_availability(run.edge_requests, window, spec.availability_target),
    ]
    if injects:
        verdicts.append(
            check_failover(
                run.samples,
                run.writes,
                injects[0]["at"],
                injects[0].get("leader_before") or _leader_at(run.samples, injects[0]["at"]),
                spec.expect_leader or "any",
                heals[-1]["at"] if heals else run.clock.now(),
                MAX_ELECTION,
                MAX_COMMIT,
            )
        )
    nodes = {name: layout.fallback_share("core") for name in layout.host_specs_names("core")}
    nodes.update({name: layout.fallback_share("edge") for name in layout.host_specs_names("edge")})
    verdicts.append(
        check_rate_limit(
            run.limited.windows, run.limited.modes, run.clock.wall, layout.RATE_LIMIT, 1.0, nodes
        )
    )
    # (inject, heal) of each fault that can make an upstream unreachable from some node.
    impairing = [
        (
            inject["at"],
            next((h["at"] for h in heals if h["fault"] == inject["fault"]), inject["at"]),
        )
        for inject in injects
        if inject.get("impairs_upstreams")
    ]
    verdicts.append(check_sticky(run.sticky, impairing))
    return verdicts


def _leader_at(samples, at: float) -> str | None:
    before = [s.leader for s in samples if s.at <= at and s.leader]
    return before[-1] if before else None
