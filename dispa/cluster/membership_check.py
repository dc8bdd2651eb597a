"""Whether a membership change keeps the cluster able to reach quorum (etcd's strict
reconfiguration check, fed this node's view of its Raft links).

A Raft cluster of N members commits only with a majority of N. A member added that never
answers raises N without raising what answers: three of them made a healthy three-core
cluster need four of six, and it stayed leaderless for good. So a change is made only
when the members this node reaches now (itself included), plus the new one if it answers,
are a majority of the membership after the change.
"""

from __future__ import annotations


def majority(members: int) -> int:
    return members // 2 + 1


def add_problem(links: dict[str, bool], new_answers: bool) -> str | None:
    """Why adding a member is refused, or None. ``links``: the other current members,
    each with whether this node reaches it; ``new_answers``: the new one's Raft address
    accepted a connection."""
    after = len(links) + 2  # this node, the others, the new one
    reachable = 1 + sum(links.values()) + (1 if new_answers else 0)
    if reachable >= majority(after):
        return None
    return (
        f"adding it would make {after} members, of which {reachable} are reachable now: a "
        f"quorum needs {majority(after)}, so the cluster could not commit; bring the "
        "unreachable cores back, or remove them first"
    )


def remove_problem(links: dict[str, bool], self_address: str, removed: str) -> str | None:
    """Why removing the member at Raft address ``removed`` is refused, or None."""
    if removed != self_address and removed not in links:
        return None  # not a Raft member: removing its entry changes no quorum
    remaining = [address for address in links if address != removed]
    after = len(remaining) + (0 if removed == self_address else 1)
    reachable = sum(links[address] for address in remaining) + (0 if removed == self_address else 1)
    if after == 0:
        return "it is the cluster's only member"
    if reachable >= majority(after):
        return None
    return (
        f"removing it would leave {after} members, of which {reachable} are reachable now: "
        f"a quorum needs {majority(after)}, so the cluster could not commit; remove an "
        "unreachable core first, or bring it back"
    )
