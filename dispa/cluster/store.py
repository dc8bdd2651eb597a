"""What a core node needs from the place the cluster state lives.

Two stores keep the same ``ClusterState`` with the same semantics (revisions with
compare-and-set, history, members, quota ledger, sessions): the embedded Raft store
(pysyncobj, ``RaftClusterStore``) and an external etcd cluster (``etcd_store.py``).
Reads (``state``) are local and may be a moment behind the latest commit; every write
returns only once committed, or raises ``CommandFailed``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from dispa.cluster.bridge import submit
from dispa.cluster.raft_store import RaftStore, RaftTimings
from dispa.cluster.raft_transport import RaftPortLimits
from dispa.cluster.state import ClusterState


class ClusterStore(Protocol):
    state: ClusterState

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def status(self) -> dict: ...  # {"role", "leader", "term", "commit_index", "has_quorum"}

    async def put_config(
        self, config: dict, expected_revision: int | None, now: float, author: str, note: str
    ) -> dict: ...
    async def rollback_config(
        self, to_revision: int, expected_revision: int | None, now: float, author: str
    ) -> dict: ...
    async def add_member(self, node_id: str, raft: str, admin: str, region: str) -> dict: ...
    async def remove_member(self, node_id: str) -> dict: ...
    async def lease_quota(
        self, limit_name: str, key: str, node: str, want: int, limit: int, window: float, now: float
    ) -> dict: ...
    async def return_quota(
        self, limit_name: str, key: str, node: str, tokens: int, window_start: float
    ) -> dict: ...
    async def put_session(
        self, upstream: str, session: str, endpoint: str, ttl: float, now: float
    ) -> dict: ...
    async def expire_sessions(self, now: float) -> dict: ...
    async def restore_state(self, plain: dict) -> dict: ...
    async def purge_cache(self, urls: list[str], tags: list[str], now: float) -> dict: ...
    async def report_edge(
        self, name: str, region: str, admin: str, revision: int, purge_seq: int, now: float
    ) -> dict: ...
    async def change_membership(self, add: bool, raft_address: str) -> None: ...
    async def acme(self, command: str, args: dict) -> dict: ...


_ROLES = {0: "follower", 1: "candidate", 2: "leader"}
WRITE_TIMEOUT = 5.0
LEASE_TIMEOUT = 1.0


class RaftClusterStore:
    """The embedded store: pysyncobj in its own thread, bridged to asyncio."""

    def __init__(
        self,
        address: str,
        peers: list[str],
        data_dir: str,
        secret: str,
        timings: RaftTimings,
        on_applied: Callable[[int], None],
        port_limits: RaftPortLimits | None = None,
    ) -> None:
        self._args = (address, peers, data_dir, secret, timings, on_applied, port_limits)
        self.raft: RaftStore | None = None

    @property
    def state(self) -> ClusterState:
        return self.raft.state

    async def start(self) -> None:
        # Binding the Raft port and starting pysyncobj's thread must not block the loop.
        self.raft = await asyncio.to_thread(RaftStore, *self._args)

    async def stop(self) -> None:
        if self.raft is not None:
            await asyncio.to_thread(self.raft.destroy)

    def status(self) -> dict:
        status = self.raft.getStatus()
        leader = status.get("leader")
        return {
            "role": _ROLES.get(status.get("state"), "unknown"),
            "leader": leader.address if leader is not None else None,
            "term": status.get("raft_term"),
            "commit_index": status.get("commit_idx"),
            "last_applied": status.get("last_applied"),
            "has_quorum": bool(status.get("has_quorum")),
        }

    def raft_links(self) -> dict[str, bool]:
        """The other Raft members by address, each with whether this node holds an
        authenticated link to it now (pysyncobj's partner status). Raises RuntimeError
        when pysyncobj's thread keeps changing the member set while it is read."""
        prefix = "partner_node_status_server_"
        for _ in range(3):
            try:
                status = self.raft.getStatus()
            except RuntimeError:  # "set changed size during iteration"
                continue
            return {k[len(prefix) :]: v == 2 for k, v in status.items() if k.startswith(prefix)}
        raise RuntimeError("the Raft member set kept changing while it was read")

    def raft_port_statistics(self) -> dict | None:
        """Peers the Raft port dropped, by reason, and connections yet to authenticate."""
        return self.raft.port_stats.snapshot() if self.raft is not None else None

    def _run(self, name: str, *args, timeout: float = WRITE_TIMEOUT):
        return submit(getattr(self.raft, name), *args, timeout=timeout)

    async def put_config(self, config, expected_revision, now, author, note):
        return await self._run("put_config", config, expected_revision, now, author, note)

    async def rollback_config(self, to_revision, expected_revision, now, author):
        return await self._run("rollback_config", to_revision, expected_revision, now, author)

    async def add_member(self, node_id, raft, admin, region):
        return await self._run("add_member", node_id, raft, admin, region)

    async def remove_member(self, node_id):
        return await self._run("remove_member", node_id)

    async def lease_quota(self, limit_name, key, node, want, limit, window, now):
        # Short: a lease that does not commit quickly means no quorum, and the node should
        # fall back to its share now rather than refuse traffic while it waits.
        return await self._run(
            "lease_quota", limit_name, key, node, want, limit, window, now, timeout=LEASE_TIMEOUT
        )

    async def return_quota(self, limit_name, key, node, tokens, window_start):
        return await self._run("return_quota", limit_name, key, node, tokens, window_start)

    async def put_session(self, upstream, session, endpoint, ttl, now):
        return await self._run("put_session", upstream, session, endpoint, ttl, now)

    async def expire_sessions(self, now):
        return await self._run("expire_sessions", now)

    async def restore_state(self, plain):
        return await self._run("restore_state", plain, time.time())

    async def purge_cache(self, urls, tags, now):
        return await self._run("purge_cache", list(urls), list(tags), now)

    async def report_edge(self, name, region, admin, revision, purge_seq, now):
        return await self._run("report_edge", name, region, admin, revision, purge_seq, now)

    async def acme(self, command, args):
        return await self._run("acme", command, args)

    async def change_membership(self, add: bool, raft_address: str) -> None:
        """Add or remove a Raft member; raises CommandFailed when refused or unconfirmed."""
        from dispa.cluster.bridge import CommandFailed

        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def on_result(result, error) -> None:  # pysyncobj's thread
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(error))

        change = self.raft.addNodeToCluster if add else self.raft.removeNodeFromCluster
        change(raft_address, callback=on_result)
        try:
            error = await asyncio.wait_for(future, WRITE_TIMEOUT)
        except TimeoutError:
            raise CommandFailed("membership change not confirmed in time", True) from None
        if error != 0:
            raise CommandFailed(f"membership change refused (code {error})", False)
