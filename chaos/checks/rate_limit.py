"""Global rate-limit over-admission against its documented bound (docs/cluster.md,
"The over-admission bound"): per key and window the cluster admits at most the limit,
plus one request of credit per node while it leases, plus, for each node that was cut off
(in fallback) during that window, its fallback share on top."""

from __future__ import annotations

from chaos.checks.verdict import Verdict, first

# A node counts as in fallback for a window if a poll this close to the window saw it so
# (polls are a second apart and fallback starts within a second of a failed lease).
MODE_SLACK = 2.0


def allowed_admissions(
    window: float,
    length: float,
    limit: int,
    nodes: dict[str, int],
    fallback_times: dict[str, list[float]],
) -> int:
    """The bound for one window. ``nodes``: node -> its fallback share;
    ``fallback_times``: node -> Unix times at which it was seen in fallback."""
    allowed = limit
    for node, share in nodes.items():
        allowed += 1  # its credit
        times = fallback_times.get(node, ())
        if any(window - MODE_SLACK <= t <= window + length + MODE_SLACK for t in times):
            allowed += share
    return allowed


def check_rate_limit(
    windows: dict[tuple[str, float], tuple[int, int]],
    modes: list[tuple[float, str, str]],
    to_unix,
    limit: int,
    length: float,
    nodes: dict[str, int],
) -> Verdict:
    """``windows``: (node, window start) -> (admitted, refused) as the nodes reported;
    ``modes``: (drill time, node, mode) polls; ``to_unix``: drill time -> Unix time."""
    fallback_times: dict[str, list[float]] = {}
    for at, node, mode in modes:
        if mode == "fallback":
            fallback_times.setdefault(node, []).append(to_unix(at))
    totals: dict[float, list[int]] = {}
    for (_node, start), (admitted, refused) in windows.items():
        entry = totals.setdefault(start, [0, 0])
        entry[0] += admitted
        entry[1] += refused
    problems = []
    worst_over, worst_allowed = 0, 0
    for start, (admitted, _) in sorted(totals.items()):
        allowed = allowed_admissions(start, length, limit, nodes, fallback_times)
        worst_over = max(worst_over, admitted - limit)
        worst_allowed = max(worst_allowed, allowed - limit)
        if admitted > allowed:
            problems.append(f"window {start:.0f}: {admitted} admitted, bound {allowed}")
    refused = sum(r for _, r in totals.values())
    admitted_total = sum(a for a, _ in totals.values())
    if totals and refused == 0:
        problems.append("nothing was refused: the traffic never reached the limit")
    fallback_nodes = sorted(fallback_times)
    return Verdict(
        "rate-limit over-admission",
        bool(totals) and not problems,
        f"{len(totals)} windows of limit {limit}: at most {worst_over} over the limit "
        f"(bound allowed up to {worst_allowed}); {len(problems)} windows over the bound",
        {
            "windows": len(totals),
            "limit": limit,
            "admitted": admitted_total,
            "refused": refused,
            "max_over_limit": worst_over,
            "max_bound_over_limit": worst_allowed,
            "nodes_in_fallback": fallback_nodes,
            "violations": len(problems),
        },
        first(problems),
    )
