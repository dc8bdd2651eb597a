"""Samples the cluster a few times a second: which core the majority follows as leader,
each core's state, term and revision. The failover checker and the report's leader band
read these samples."""

from __future__ import annotations

from dataclasses import dataclass

from chaos.nodes import majority_leader

SAMPLE_EVERY = 0.2


@dataclass(frozen=True)
class Sample:
    at: float
    leader: str | None  # the majority's leader
    cores: dict  # name -> {"state", "term", "revision", "applied"} or None (no answer)


async def watch_cluster(span, nodes, samples: list[Sample]) -> None:
    raft_names = nodes.raft_names()
    while span.running():
        at = span.now()
        statuses = await nodes.core_statuses()
        cores = {
            name: None
            if status is None
            else {
                "state": status.get("state"),
                "term": status.get("term"),
                "revision": status.get("revision"),
                "applied": status.get("applied_revision"),
            }
            for name, status in statuses.items()
        }
        samples.append(Sample(at, majority_leader(statuses, raft_names), cores))
        await span.pause(SAMPLE_EVERY)
