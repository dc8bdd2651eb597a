"""Data-plane availability through the edges, per second and while the faults last."""

from __future__ import annotations

from chaos.checks.verdict import Verdict, first

# Requests sent this long after the last heal still count as "during the fault": the
# system is allowed to recover, not to hide a slow recovery.
RECOVERY_MARGIN = 5.0


def per_second(requests) -> dict[int, tuple[int, int]]:
    """Second of the drill -> (succeeded, failed) of the requests sent in it."""
    buckets: dict[int, list[int]] = {}
    for request in requests:
        bucket = buckets.setdefault(int(request.at), [0, 0])
        bucket[0 if request.ok else 1] += 1
    return {second: (ok, bad) for second, (ok, bad) in sorted(buckets.items())}


def check_availability(
    requests, fault_window: tuple[float, float] | None, target: float
) -> Verdict:
    """At least ``target`` of the requests succeed, over the whole drill and over the
    requests sent while the faults lasted (plus the recovery margin)."""
    total = len(requests)
    ok = sum(1 for r in requests if r.ok)
    ratio = ok / total if total else 0.0
    during = requests
    if fault_window is not None:
        start, end = fault_window
        during = [r for r in requests if start <= r.at <= end + RECOVERY_MARGIN]
    during_ok = sum(1 for r in during if r.ok)
    during_ratio = during_ok / len(during) if during else 1.0
    seconds = per_second(requests)
    worst = min(seconds.items(), key=lambda item: item[1][0] / max(1, sum(item[1])), default=None)
    failures: dict[str, int] = {}
    for r in requests:
        if not r.ok:
            reason = r.error or f"status {r.status}"
            key = f"{r.target}: {reason}"
            failures[key] = failures.get(key, 0) + 1
    problems = [
        f"{count} x {what}" for what, count in sorted(failures.items(), key=lambda i: -i[1])
    ]
    passed = total > 0 and ratio >= target and during_ratio >= target
    return Verdict(
        "edge availability",
        passed,
        f"{ok}/{total} edge requests succeeded ({ratio:.3%}); while faulted {during_ok}/"
        f"{len(during)} ({during_ratio:.3%}); target {target:.1%}",
        {
            "requests": total,
            "succeeded": ok,
            "ratio": round(ratio, 5),
            "during_fault_requests": len(during),
            "during_fault_ratio": round(during_ratio, 5),
            "target": target,
            "worst_second": worst[0] if worst else None,
            "worst_second_ratio": round(worst[1][0] / max(1, sum(worst[1])), 4) if worst else None,
        },
        first(problems),
    )
