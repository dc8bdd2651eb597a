"""Session stickiness: a client keeps the upstream it was given, unless a fault made that
upstream unreachable (then moving is the promise, not a breach of it)."""

from __future__ import annotations

from chaos.checks.verdict import Verdict, first

# After a fault that impairs upstreams is healed, health checks and outlier ejection take
# a few seconds to settle; a move in that time is still the fault's doing.
SETTLE = 5.0
# A request sent up to this long before the fault (the clients' timeout) was in flight
# when it struck.
IN_FLIGHT = 3.0


def check_sticky(records, impairing_windows: list[tuple[float, float]]) -> Verdict:
    """``records``: StickyRequest in time order per client; ``impairing_windows``:
    (inject, heal) of the faults that can make an upstream unreachable."""
    clients: dict[str, list] = {}
    for record in sorted(records, key=lambda r: r.at):
        clients.setdefault(record.client, []).append(record)
    kept = moves = justified = served = 0
    problems = []
    for client, requests in sorted(clients.items()):
        pinned = None
        for request in requests:
            if request.status != 200 or not request.upstream:
                continue
            served += 1
            if pinned is None:
                pinned = request.upstream
                continue
            if request.upstream == pinned:
                kept += 1
                continue
            moves += 1
            if any(
                start - IN_FLIGHT <= request.at <= end + SETTLE for start, end in impairing_windows
            ):
                justified += 1
            else:
                problems.append(
                    f"{client} moved from {pinned} to {request.upstream} at {request.at:.1f} s "
                    f"(through {request.node}) with no fault to explain it"
                )
            pinned = request.upstream
    followups = kept + moves
    return Verdict(
        "sessions stay sticky",
        bool(clients) and followups > 0 and not problems,
        f"{len(clients)} clients, {kept}/{followups} follow-up requests on their pinned "
        f"upstream; {moves} moves, {justified} explained by a fault",
        {
            "clients": len(clients),
            "served": served,
            "kept": kept,
            "moves": moves,
            "justified_moves": justified,
            "violations": len(problems),
        },
        first(problems),
    )
