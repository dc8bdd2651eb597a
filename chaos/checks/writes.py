"""Checkers of the config write history against what every node holds afterwards.

``ops`` are the writers' records (``chaos.writers.WriteOp``); ``histories`` map each core
to {revision: marker} as read back from it after the drill (the marker is what the write
put in the config, and names the write); ``edges`` map each edge to the marker it serves.
"""

from __future__ import annotations

import math

from chaos.checks.verdict import Verdict, first

INITIAL_MARKER = "initial"


def check_durable(ops, histories: dict[str, dict[int, str]]) -> Verdict:
    """Every acknowledged write is, on every core, at the revision it was acknowledged
    with."""
    acked = [op for op in ops if op.result == "ok"]
    problems, missing_ops = [], set()
    for op in acked:
        for core, history in sorted(histories.items()):
            held = history.get(op.revision)
            if held != op.op_id:
                missing_ops.add(op.op_id)
                problems.append(
                    f"{op.op_id} was acknowledged as revision {op.revision}, but {core} holds "
                    f"{held!r} there"
                )
    missing = len(missing_ops)
    return Verdict(
        "acknowledged writes durable",
        not problems and bool(histories),
        f"{len(acked) - missing} of {len(acked)} acknowledged writes present on all "
        f"{len(histories)} cores",
        {"acknowledged": len(acked), "missing": missing, "cores": len(histories)},
        first(problems),
    )


def check_no_fork(histories: dict[str, dict[int, str]]) -> Verdict:
    """No revision number names two different configs, and no core's history has a gap."""
    problems = []
    revisions = sorted(set().union(*(h.keys() for h in histories.values()))) if histories else []
    for revision in revisions:
        held = {core: h[revision] for core, h in histories.items() if revision in h}
        if len(set(held.values())) > 1:
            problems.append(f"revision {revision} forked: {held}")
    for core, history in sorted(histories.items()):
        numbers = sorted(history)
        if numbers and numbers != list(range(numbers[0], numbers[-1] + 1)):
            gaps = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
            problems.append(f"{core}'s history skips revisions {gaps[:5]}")
    lengths = {core: len(h) for core, h in histories.items()}
    return Verdict(
        "revisions never fork",
        not problems,
        f"{len(revisions)} revisions compared across {len(histories)} cores, "
        f"{sum(1 for p in problems if 'forked' in p)} forked",
        {
            "revisions": len(revisions),
            "forks": sum(1 for p in problems if "forked" in p),
            **{f"revisions_on_{core}": n for core, n in sorted(lengths.items())},
        },
        first(problems),
    )


def check_linearizable(ops, history: dict[int, str]) -> Verdict:
    """The revision log is a linearization of the writes: each revision holds a write that
    was really sent (never one that certainly failed, never one twice), acknowledged writes
    sit at the revision they were told, and revision order respects real time (a write that
    completed before another was invoked has the lower revision).

    For an append-only log whose order is the revision, that real-time condition is the
    whole of linearizability, so it is checked directly in O(n log n)."""
    by_id = {op.op_id: op for op in ops}
    problems = []
    placed = []  # (revision, op)
    seen: dict[str, int] = {}
    for revision in sorted(history):
        marker = history[revision]
        if marker == INITIAL_MARKER:
            continue
        op = by_id.get(marker)
        if op is None:
            problems.append(f"revision {revision} holds {marker!r}, which no writer sent")
            continue
        if marker in seen:
            problems.append(f"{marker} applied twice: revisions {seen[marker]} and {revision}")
            continue
        seen[marker] = revision
        if op.result == "failed":
            problems.append(f"{marker} failed ({op.detail}) yet is revision {revision}")
        if op.result == "ok" and op.revision != revision:
            problems.append(f"{marker} was acknowledged as {op.revision} but is {revision}")
        placed.append((revision, op))
    for op in ops:
        if op.result == "ok" and op.op_id not in seen:
            problems.append(f"{op.op_id} acknowledged as revision {op.revision} is missing")
    # Real time: scanning in revision order, no write may have completed before a write
    # with a lower revision was invoked. An unknown write has no known completion.
    latest_invoke, latest_op = -math.inf, None
    for revision, op in placed:
        complete = op.complete if op.result == "ok" else math.inf
        if complete < latest_invoke:
            problems.append(
                f"{op.op_id} (revision {revision}) completed at {op.complete:.3f} s, before "
                f"{latest_op.op_id} (a lower revision) was invoked at {latest_invoke:.3f} s"
            )
        if op.invoke > latest_invoke:
            latest_invoke, latest_op = op.invoke, op
    counts = {r: sum(1 for op in ops if op.result == r) for r in ("ok", "failed", "unknown")}
    unknown_applied = sum(1 for _, op in placed if op.result == "unknown")
    return Verdict(
        "history linearizable",
        not problems,
        f"{len(ops)} writes ({counts['ok']} ok, {counts['failed']} failed, {counts['unknown']} "
        f"unknown, of which {unknown_applied} took effect): {len(problems)} violations",
        {
            **counts,
            "writes": len(ops),
            "unknown_applied": unknown_applied,
            "violations": len(problems),
        },
        first(problems),
    )


def check_edges_converged(
    edges: dict[str, dict], final_revision: int, final_marker: str
) -> Verdict:
    """After the drill every edge serves the cluster's latest revision. ``edges``: name ->
    {"revision": its applied revision, "marker": what its GET /drill/marker answered}."""
    problems = [
        f"{name} serves revision {state.get('revision')} ({state.get('marker')!r}), not "
        f"{final_revision} ({final_marker!r})"
        for name, state in sorted(edges.items())
        if state.get("revision") != final_revision or state.get("marker") != final_marker
    ]
    return Verdict(
        "edges caught up",
        not problems and bool(edges),
        f"{len(edges) - len(problems)} of {len(edges)} edges serve revision {final_revision}",
        {"edges": len(edges), "behind": len(problems), "final_revision": final_revision},
        first(problems),
    )
