"""Time from a fault to a new leader, and to the next committed write."""

from __future__ import annotations

from chaos.checks.verdict import Verdict


def check_failover(
    samples,
    ops,
    fault_at: float,
    leader_before: str | None,
    expect: str,
    heal_at: float,
    max_election: float,
    max_commit: float,
) -> Verdict:
    """``expect``: ``new`` (the leader must change, within ``max_election`` seconds) or
    ``same`` (the leader must stay while the fault lasts). Either way a write sent after
    the fault must be committed within ``max_commit`` seconds."""
    new_leader_at, new_leader = None, None
    changed_during = []
    for sample in samples:
        if sample.at < fault_at or sample.leader is None:
            continue
        if sample.leader != leader_before:
            if new_leader_at is None:
                new_leader_at, new_leader = sample.at, sample.leader
            if sample.at <= heal_at:
                changed_during.append(sample.leader)
    commits = [op for op in ops if op.result == "ok" and op.invoke >= fault_at]
    next_commit = min((op.complete for op in commits), default=None)
    election = None if new_leader_at is None else round(new_leader_at - fault_at, 3)
    commit = None if next_commit is None else round(next_commit - fault_at, 3)
    problems = []
    if expect == "new":
        if election is None:
            problems.append(f"no new leader after the fault (the leader was {leader_before})")
        elif election > max_election:
            problems.append(f"the new leader came after {election} s (bound {max_election} s)")
    elif expect == "same" and changed_during:
        problems.append(f"the leader changed from {leader_before} to {changed_during[0]}")
    if commit is None:
        problems.append("no write sent after the fault was committed")
    elif commit > max_commit:
        problems.append(
            f"the first commit after the fault came after {commit} s (bound {max_commit} s)"
        )
    if expect == "new":
        said = (
            f"new leader {new_leader} after {election} s"
            if election is not None
            else "no new leader"
        )
    else:
        said = f"leader {leader_before} kept" if not changed_during else "leader changed"
    return Verdict(
        "failover",
        not problems,
        f"{said}; next commit {commit} s after the fault",
        {
            "leader_before": leader_before,
            "new_leader": new_leader,
            "seconds_to_new_leader": election,
            "seconds_to_next_commit": commit,
            "max_election": max_election,
            "max_commit": max_commit,
        },
        tuple(problems),
    )
