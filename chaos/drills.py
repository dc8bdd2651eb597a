"""The drills: which faults, what the checkers expect, and which run in the default tests.

Each drill runs the same layout and workload (see chaos/runner.py); what differs is the
fault, whether the leader must change, and the availability the edges must keep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chaos import faults


@dataclass(frozen=True)
class DrillSpec:
    name: str
    description: str
    make_faults: Callable[[], list[faults.Fault]]
    # new: the leader must change; same: it must not; None: either is fine.
    expect_leader: str | None
    # Share of edge requests that must succeed, over the drill and while faulted.
    availability_target: float = 0.999
    # Regions whose upstream the cores and edges reach through a fault-injecting relay.
    relayed_upstreams: tuple[str, ...] = ()
    # Edges that reach the cores (config stream, quota leases) through relays.
    relayed_edges: tuple[str, ...] = ()
    # Part of the default test suite (short); the others run with `make drill`.
    quick: bool = False


DRILLS = [
    DrillSpec(
        "leader-kill",
        "kill -9 the Raft leader; a new one must take over while the edges keep serving",
        lambda: [faults.KillCore(name="kill -9 leader", which="leader")],
        expect_leader="new",
        quick=True,
    ),
    DrillSpec(
        "follower-kill",
        "kill -9 a follower core; the leader stays and writes keep committing",
        lambda: [faults.KillCore(name="kill -9 follower", which="follower")],
        expect_leader="same",
        quick=True,
    ),
    DrillSpec(
        "leader-partition",
        "cut the leader off from the other cores (both ways); the majority elects a new one",
        lambda: [faults.PartitionLeader(name="partition leader from majority")],
        expect_leader="new",
        quick=True,
    ),
    DrillSpec(
        "edge-cut-off",
        "cut an edge off from every core; it keeps serving and catches up afterwards",
        lambda: [faults.EdgeCutOff(name="edge-eu cut off from every core", edge="edge-eu")],
        expect_leader="same",
        quick=True,
    ),
    DrillSpec(
        "minority-kill",
        "kill -9 a minority of the cores (with three: one, the leader) and the upstream of "
        "its region, as when a region's data centre goes dark",
        lambda: [faults.KillRegion(name="kill -9 the leader's region")],
        expect_leader="new",
        availability_target=0.99,
    ),
    DrillSpec(
        "region-isolation",
        "isolate the leader's whole region (core, edge, upstream) from the other regions",
        lambda: [faults.IsolateRegion(name="isolate the leader's region")],
        expect_leader="new",
        # Measured 98.5-100%: for the first 1-2 s the isolated edge's tries to the cut-off
        # regions time out (504) before health checks take them out of service.
        availability_target=0.98,
    ),
    DrillSpec(
        "one-way-partition",
        "asymmetric partition: nothing the leader sends reaches the other cores",
        lambda: [faults.OneWayPartition(name="leader cannot send to the others")],
        expect_leader="new",
    ),
    DrillSpec(
        "upstream-death",
        "kill -9 one region's upstream; retries and health checks route around it",
        lambda: [faults.KillUpstream(name="kill -9 upstream eu", region="eu")],
        expect_leader="same",
        availability_target=0.99,
    ),
    DrillSpec(
        "upstream-slow",
        "one region's upstream answers through a relay adding 400 ms and a 64 KiB/s limit",
        lambda: [faults.SlowUpstream(name="slow upstream ap (relay)", region="ap")],
        expect_leader="same",
        relayed_upstreams=("ap",),
    ),
    DrillSpec(
        "slow-edge-links",
        "edge-us reaches the cores through relays adding 300 ms each way and resetting 20% "
        "of new connections: config and quota leases must still get through",
        lambda: [faults.SlowEdgeLinks(name="slow, lossy links edge-us to cores (relay)")],
        expect_leader="same",
        relayed_edges=("edge-us",),
    ),
    DrillSpec(
        "lossy-core-links",
        "each core drops 20% of the packets it sends to the other cores",
        lambda: [faults.LossyCoreLinks(name="20% loss between cores", percent=20)],
        expect_leader=None,
    ),
]


def find(name: str) -> DrillSpec | None:
    return next((drill for drill in DRILLS if drill.name == name), None)
