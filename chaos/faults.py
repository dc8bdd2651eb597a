"""Faults a drill injects, each with heal().

``inject`` picks its targets when it runs (the leader is whoever leads at that moment) and
returns what it did; ``heal`` undoes it: a killed process is started again on its own
data, a filter table is deleted, a relay's toxics are cleared.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from chaos import firewall

_tables = itertools.count(1)


@dataclass
class Fault:
    """Base: a name for the report and where its effects reach."""

    name: str = "fault"
    # Upstream endpoints may be unreachable from some node while this fault lasts, so a
    # sticky client moving to another endpoint is expected, not a broken promise.
    impairs_upstreams: bool = False

    async def inject(self, drill) -> dict:
        raise NotImplementedError

    async def heal(self, drill) -> dict:
        raise NotImplementedError


async def _leader(drill) -> str:
    return await drill.nodes.wait_leader(10.0)


# ---------------------------------------------------------------- process deaths


@dataclass
class KillCore(Fault):
    """kill -9 of the leader, or of a follower."""

    which: str = "leader"  # leader | follower
    targets: list[str] = field(default_factory=list)

    async def inject(self, drill) -> dict:
        leader = await _leader(drill)
        cores = drill.nodes.names("core")
        target = leader if self.which == "leader" else next(c for c in cores if c != leader)
        self.targets = [target]
        drill.nodes.kill(target)
        return {"killed": self.targets, "leader_before": leader}

    async def heal(self, drill) -> dict:
        for name in self.targets:
            drill.nodes.start(name)
        return {"restarted": self.targets}


@dataclass
class KillRegion(Fault):
    """kill -9 of a minority of the cores (with three, one: the leader) together with the
    upstream of its region: a region's data centre goes dark. The region's edge, at a
    point of presence elsewhere, lives on and must route around it."""

    impairs_upstreams: bool = True
    targets: list[str] = field(default_factory=list)

    async def inject(self, drill) -> dict:
        leader = await _leader(drill)
        region = drill.nodes.hosts[leader].region
        self.targets = [
            h.name
            for h in drill.nodes.hosts.values()
            if h.region == region and h.role in ("core", "upstream")
        ]
        for name in self.targets:
            drill.nodes.kill(name)
        return {"killed": self.targets, "leader_before": leader, "region": region}

    async def heal(self, drill) -> dict:
        for name in self.targets:
            drill.nodes.start(name)
        return {"restarted": self.targets}


@dataclass
class KillUpstream(Fault):
    region: str = "eu"
    impairs_upstreams: bool = True

    async def inject(self, drill) -> dict:
        drill.nodes.kill(f"up-{self.region}")
        return {"killed": [f"up-{self.region}"]}

    async def heal(self, drill) -> dict:
        drill.nodes.start(f"up-{self.region}")
        return {"restarted": [f"up-{self.region}"]}


# ---------------------------------------------------------------- partitions


@dataclass
class _Filtered(Fault):
    """A fault made of nft tables in some hosts' namespaces."""

    applied: list[tuple[str, str]] = field(default_factory=list)  # (host, table)

    def _apply(self, drill, host: str, **rules) -> None:
        table = f"drill_fault_{next(_tables)}"
        firewall.apply(drill.topology, host, firewall.filter_script(table, **rules))
        self.applied.append((host, table))

    async def heal(self, drill) -> dict:
        for host, table in self.applied:
            firewall.remove(drill.topology, host, table)
        healed = sorted({host for host, _ in self.applied})
        self.applied = []
        return {"filters_removed": healed}


def _core_addresses(drill, but: str | None = None) -> list[str]:
    return [h.address for h in drill.nodes.hosts.values() if h.role == "core" and h.name != but]


@dataclass
class PartitionLeader(_Filtered):
    """The leader loses the other cores (both ways); edges and clients still reach it."""

    async def inject(self, drill) -> dict:
        leader = await _leader(drill)
        others = _core_addresses(drill, but=leader)
        self._apply(drill, leader, drop_to=others, drop_from=others)
        return {"isolated": leader, "leader_before": leader}


@dataclass
class OneWayPartition(_Filtered):
    """Asymmetric: nothing the leader sends reaches the other cores; what they send still
    reaches it."""

    async def inject(self, drill) -> dict:
        leader = await _leader(drill)
        self._apply(drill, leader, drop_to=_core_addresses(drill, but=leader))
        return {"silenced": leader, "leader_before": leader}


@dataclass
class IsolateRegion(_Filtered):
    """Every host of one region (core, edge, upstream) loses every host of the other
    regions; clients still reach it. With ``region`` unset: the leader's region."""

    region: str | None = None
    impairs_upstreams: bool = True

    async def inject(self, drill) -> dict:
        leader = await _leader(drill)
        region = self.region or drill.nodes.hosts[leader].region
        inside = [h for h in drill.nodes.hosts.values() if h.region == region]
        outside = [h.address for h in drill.nodes.hosts.values() if h.region != region]
        for host in inside:
            self._apply(drill, host.name, drop_to=outside, drop_from=outside)
        return {"region": region, "hosts": [h.name for h in inside], "leader_before": leader}


@dataclass
class EdgeCutOff(_Filtered):
    """An edge loses every core; it keeps serving its clients from what it holds."""

    edge: str = "edge-eu"

    async def inject(self, drill) -> dict:
        cores = _core_addresses(drill)
        self._apply(drill, self.edge, drop_to=cores, drop_from=cores)
        return {"cut_off": self.edge}


@dataclass
class LossyCoreLinks(_Filtered):
    """Each core drops this share of the packets it sends to the other cores."""

    percent: int = 20

    async def inject(self, drill) -> dict:
        for core in drill.nodes.names("core"):
            self._apply(
                drill, core, drop_to=_core_addresses(drill, but=core), loss_percent=self.percent
            )
        return {"loss_percent": self.percent, "cores": drill.nodes.names("core")}


# ---------------------------------------------------------------- through the relay


@dataclass
class SlowEdgeLinks(Fault):
    """Every link from one edge to the cores (relays) adds latency and resets a share of
    new connections."""

    edge: str = "edge-us"
    latency_ms: float = 300.0
    reset_probability: float = 0.2

    def _relays(self, drill) -> list:
        return [r for name, r in drill.relays.items() if name.startswith(f"{self.edge}->")]

    async def inject(self, drill) -> dict:
        for relay in self._relays(drill):
            relay.set(latency_ms=self.latency_ms, reset_probability=self.reset_probability)
        return {"edge": self.edge, "latency_ms": self.latency_ms, "resets": self.reset_probability}

    async def heal(self, drill) -> dict:
        statistics = {}
        for relay in self._relays(drill):
            relay.clear()
            statistics[relay.name] = relay.statistics()["resets"]
        return {"edge": self.edge, "connections_reset": statistics}


@dataclass
class SlowUpstream(Fault):
    """The link to one region's upstream (a relay) adds latency and limits bandwidth. Slower
    than the health check's timeout, the upstream is taken out of service, so sticky
    clients pinned to it move: that is the promise, not a breach of it."""

    region: str = "ap"
    impairs_upstreams: bool = True
    latency_ms: float = 400.0
    bandwidth_bytes_per_s: float | None = 64 * 1024

    async def inject(self, drill) -> dict:
        relay = drill.relays[f"up-{self.region}"]
        toxics = relay.set(
            latency_ms=self.latency_ms, bandwidth_bytes_per_s=self.bandwidth_bytes_per_s
        )
        return {"relay": relay.name, "toxics": vars(toxics)}

    async def heal(self, drill) -> dict:
        relay = drill.relays[f"up-{self.region}"]
        relay.clear()
        return {"relay": relay.name, "statistics": relay.statistics()}
