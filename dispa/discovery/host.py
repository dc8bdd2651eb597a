"""What leader-run discovery needs from the core it runs on, as an interface.

Discovery does not import the cluster: the cluster imports discovery's leader loop, and a
package pair that imports both ways is a cycle (DESIGN.md, "Layout"). So discovery states
here what it needs, and the cluster implements it (dispa/cluster/discovery_host.py) and
hands it to ``LeaderDiscovery``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class CommitUnavailable(Exception):
    """The cluster could not commit now (no quorum, no leader, a lost store); retried on
    the next change."""


class DiscoveryHost(Protocol):
    def status(self) -> dict:
        """This core's store status: ``role`` ("leader", "follower", "etcd-client" ...) and
        ``leader`` (the Raft address of the leader, if known)."""
        ...

    def config_in_force(self) -> tuple[int, dict | None]:
        """The shared config in force and its revision, read together (None before the
        first config)."""
        ...

    def members(self) -> Iterable[dict]:
        """The cluster's members, each with its ``raft`` and ``admin`` addresses."""
        ...

    async def wait_changed(self, timeout: float) -> None:
        """Return when the replicated state changes, or after ``timeout`` seconds."""
        ...

    def validate(self, config: dict) -> None:
        """Raise ConfigError when ``config`` fails the checks ``dispa apply`` makes."""
        ...

    async def commit(self, config: dict, expected_revision: int, now: float) -> dict:
        """Compare-and-set ``config`` on ``expected_revision``, authored by discovery: the
        store's answer (``ok``, ``revision``, ``unchanged``, ``error``). Raises
        CommitUnavailable when the cluster could not commit."""
        ...
