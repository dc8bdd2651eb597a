"""Runs one drill on a topology that the caller created (and will destroy):

  start the nodes -> workload starts -> warm-up -> inject the faults -> hold -> heal ->
  recovery -> workload stops -> wait until every node holds the latest revision ->
  read back every core's history and every edge's state (chaos/readback.py) ->
  checkers (chaos/judge.py) -> report data.

Every phase is bounded in time; the workload is bounded in count as well.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chaos.checks.availability import per_second
from chaos.clock import DrillClock, Span
from chaos.drills import DrillSpec
from chaos.judge import judge
from chaos.limited import RateLimitRecord, limited_traffic, poll_rate_limits
from chaos.load import steady_load
from chaos.monitor import watch_cluster
from chaos.nodes import DrillError, Nodes
from chaos.readback import settle_and_read
from chaos.relay import Relay
from chaos.sticky import sticky_client
from chaos.topology import Topology
from chaos.writers import WriteBudget, config_writer

EDGE_RATE = 40  # requests per second to each edge
LIMITED_RATE = 8  # requests per second to /limited on each node (5 nodes: twice the limit)
STICKY_INTERVAL = 0.5
WRITERS = 3  # one per core to start with: a stuck core never stalls them all
WRITE_BUDGET = 90  # the history keeps 100 revisions


@dataclass
class Phases:
    warmup: float
    hold: float
    total: float

    @classmethod
    def for_duration(cls, duration: float) -> Phases:
        warmup = max(4.0, 0.25 * duration)
        hold = max(3.0, 0.4 * duration)
        return cls(warmup, hold, max(duration, warmup + hold + 3.0))


@dataclass
class DrillRun:
    """Everything one run records; the runner fills it, the report reads it."""

    spec: DrillSpec
    duration: float
    clock: DrillClock = field(default_factory=DrillClock)
    events: list[dict] = field(default_factory=list)  # each fault's inject and heal
    edge_requests: list = field(default_factory=list)
    writes: list = field(default_factory=list)
    limited: RateLimitRecord = field(default_factory=RateLimitRecord)
    sticky: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    verdicts: list = field(default_factory=list)
    final: dict = field(default_factory=dict)


class Drill:
    """What faults act on: the nodes, the topology and the relays."""

    def __init__(self, topology: Topology, nodes: Nodes, relays: dict[str, Relay]) -> None:
        self.topology = topology
        self.nodes = nodes
        self.relays = relays


async def run_drill(
    spec: DrillSpec, topology: Topology, workdir: Path, duration: float, progress
) -> DrillRun:
    run = DrillRun(spec, duration)
    phases = Phases.for_duration(duration)
    nodes = Nodes(topology, workdir)
    relays: dict[str, Relay] = {}
    try:
        for region in spec.relayed_upstreams:
            target = nodes.endpoints[region]
            relay = await Relay(f"up-{region}", topology.gateway_address, target).start()
            relays[f"up-{region}"] = relay
            nodes.endpoints[region] = relay.address
        for edge in spec.relayed_edges:
            nodes.edge_cores[edge] = []
            for core in nodes.names("core"):
                relay = Relay(f"{edge}->{core}", topology.gateway_address, nodes.admin(core))
                relays[f"{edge}->{core}"] = await relay.start()
                nodes.edge_cores[edge].append(relay.address)
        await nodes.start_all(progress)
        run.clock = DrillClock()  # the drill's time starts with the workload
        drill = Drill(topology, nodes, relays)
        await _exercise(run, drill, phases, progress)
        progress("workload stopped; waiting for every node to hold the latest revision ...")
        final = await settle_and_read(nodes)
        run.final = final
        run.verdicts = judge(run, final)
        return run
    finally:
        for relay in relays.values():
            await relay.close()
        await nodes.close()


def _say(run: DrillRun, progress, text: str) -> None:
    progress(f"[{run.clock.now():6.1f}s] {text}")


async def _exercise(run: DrillRun, drill: Drill, phases: Phases, progress) -> None:
    nodes, clock, until = drill.nodes, run.clock, phases.total
    stop = asyncio.Event()
    span = Span(clock, until, stop)
    workload = [asyncio.create_task(task) for task in _workload(run, nodes, span)]
    faults = run.spec.make_faults()
    try:
        _say(
            run,
            progress,
            f"workload running: {len(nodes.names('edge'))} edges at {EDGE_RATE} req/s each, "
            f"{WRITERS} config writers, rate-limited and sticky clients",
        )
        await _sleep_until(clock, phases.warmup, workload)
        for fault in faults:
            started = clock.now()  # requests sent from here on may meet the fault
            details = await fault.inject(drill)
            run.events.append(
                {
                    "at": started,
                    "kind": "inject",
                    "fault": fault.name,
                    "impairs_upstreams": fault.impairs_upstreams,
                    **details,
                }
            )
            _say(run, progress, f"fault: {fault.name} {_brief(details)}")
        await _sleep_until(clock, phases.warmup + phases.hold, workload)
        for fault in reversed(faults):
            details = await fault.heal(drill)
            run.events.append({"at": clock.now(), "kind": "heal", "fault": fault.name, **details})
            _say(run, progress, f"healed: {fault.name} {_brief(details)}")
        last_report = 0.0
        while clock.now() < until and not all(t.done() for t in workload):
            await _sleep_until(clock, min(until, clock.now() + 1.0), workload)
            if clock.now() - last_report >= 5.0:
                last_report = clock.now()
                _say(run, progress, _progress_line(run))
    finally:
        stop.set()
        done, pending = await asyncio.wait(workload, timeout=15.0)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None and not isinstance(
                task.exception(), asyncio.CancelledError
            ):
                raise DrillError(f"a workload task failed: {task.exception()!r}")
    _say(run, progress, _progress_line(run))


def _workload(run: DrillRun, nodes: Nodes, span: Span) -> list:
    """The workload's coroutines, each bounded by ``span`` and by a request count."""
    edges = {name: nodes.listener(name) for name in nodes.names("edge")}
    cores = {name: nodes.listener(name) for name in nodes.names("core")}
    admins = {name: nodes.admin(name) for name in nodes.names("core") + nodes.names("edge")}
    seconds = int(span.until) + 10
    tasks = [
        steady_load(span, edges, "/", EDGE_RATE, EDGE_RATE * seconds * 2, run.edge_requests),
        limited_traffic(
            span, {**cores, **edges}, LIMITED_RATE, LIMITED_RATE * seconds * 5, run.limited
        ),
        poll_rate_limits(span, admins, "drill_limit", run.limited),
        watch_cluster(span, nodes, run.samples),
    ]
    # Clients of the cores go round-robin over them (in both directions); clients of an
    # edge stay on it.
    core_orders = [cores, dict(reversed(list(cores.items()))), cores]
    for index, order in enumerate(core_orders, start=1):
        interval = STICKY_INTERVAL * (1 + 0.3 * (index - 1))
        tasks.append(
            sticky_client(span, f"cores-{index}", order, True, interval, seconds * 3, run.sticky)
        )
    for edge, address in edges.items():
        for index in (1, 2):
            tasks.append(
                sticky_client(
                    span,
                    f"{edge}-{index}",
                    {edge: address},
                    False,
                    STICKY_INTERVAL,
                    seconds * 3,
                    run.sticky,
                )
            )
    budget = WriteBudget(WRITE_BUDGET)
    core_admins = {name: nodes.admin(name) for name in nodes.names("core")}
    # Paced so that the budget lasts the whole drill (failed writes retry sooner).
    pace = max(0.25, span.until * WRITERS / (WRITE_BUDGET * 0.8))
    for writer in range(WRITERS):
        tasks.append(
            config_writer(
                span, writer, core_admins, dict(nodes.endpoints), budget, run.writes, pace
            )
        )
    return tasks


async def _sleep_until(clock, at: float, workload) -> None:
    while clock.now() < at:
        await asyncio.sleep(min(0.2, max(0.0, at - clock.now())))


def _brief(details: dict) -> str:
    shown = {k: v for k, v in details.items() if k not in ("statistics", "toxics")}
    return " ".join(f"{k}={v}" for k, v in shown.items())


def _progress_line(run: DrillRun) -> str:
    requests = run.edge_requests
    ok = sum(1 for r in requests if r.ok)
    acked = sum(1 for w in run.writes if w.result == "ok")
    leader = next((s.leader for s in reversed(run.samples) if s.leader), None)
    return (
        f"edge requests {ok}/{len(requests)} ok, writes {acked}/{len(run.writes)} acknowledged, "
        f"leader {leader}"
    )


def timeline(run: DrillRun) -> list[dict]:
    """Per second of the drill: edge requests ok and failed, and the majority's leader."""
    seconds = per_second(run.edge_requests)
    leaders: dict[int, str | None] = {}
    for sample in run.samples:
        leaders[int(sample.at)] = sample.leader
    last = max([*seconds, *leaders], default=-1)
    return [
        {
            "second": second,
            "ok": seconds.get(second, (0, 0))[0],
            "failed": seconds.get(second, (0, 0))[1],
            "leader": leaders.get(second),
        }
        for second in range(last + 1)
    ]


def plain_run(run: DrillRun) -> dict:
    """The run as JSON-ready data (the report's body)."""
    return {
        "drill": run.spec.name,
        "description": run.spec.description,
        "duration": run.duration,
        "started_at": run.clock.started_wall,
        "passed": all(v.passed for v in run.verdicts),
        "verdicts": [v.plain() for v in run.verdicts],
        "events": run.events,
        "timeline": timeline(run),
        "writes": [w.plain() for w in run.writes],
        "final_revision": run.final.get("final_revision"),
        "edges": run.final.get("edges"),
        "sticky_requests": len(run.sticky),
        "rate_limited_requests": len(run.limited.requests),
        "leader_samples": [asdict(s) for s in run.samples[:: max(1, len(run.samples) // 400)]],
    }
