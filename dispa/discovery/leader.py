"""Discovery on a core cluster: providers run on the Raft leader only, and move with it.

``LeaderDiscovery.run()`` runs on every core. Whenever the replicated state changes, and a
few times a second besides, it looks at this core's role and at the shared config's
``discovery`` section: a core that became leader starts the declared providers, one that
lost leadership stops them, and a changed section restarts them. Each change of the
providers' view becomes a new config revision, committed with compare-and-set on the
revision it was computed from, so every core and edge serves the same endpoints; a view
that leaves the config as it is commits nothing.

The core is seen through ``DiscoveryHost`` (host.py), which the cluster implements:
discovery imports nothing of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from pydantic import ValidationError

from dispa.config.discovery import Discovery
from dispa.config.errors import ConfigError
from dispa.discovery.host import CommitUnavailable, DiscoveryHost
from dispa.discovery.merge import apply_discovered
from dispa.discovery.provider import Pools
from dispa.discovery.running import RunningProviders

log = logging.getLogger("dispa.discovery")

# Leadership is read from the store's status: how often, at most, a change goes unseen.
ROLE_POLL = 0.25


class StaleView(Exception):
    """The config moved on while a view was being committed; retried with the new one."""


class LeaderDiscovery:
    def __init__(self, host: DiscoveryHost, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.clock = clock
        self.providers = RunningProviders(self._on_change, clock)
        self._refused: dict | None = None  # a proposed config that failed validation
        self._lock = asyncio.Lock()
        self._warned = False  # about a store without a leader

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.step()
                except (StaleView, CommitUnavailable) as error:
                    log.debug("discovery: not committed yet (%s); trying again", error)
                await self.host.wait_changed(ROLE_POLL)
        finally:
            await self.providers.stop()

    async def step(self) -> None:
        """Start, stop or restart the providers for this core's role and the config in
        force; fill in endpoints a new revision lacks (an upstream newly bound to a pool)."""
        declared = self.declared()
        if declared.providers and not self._warned and self.role() == "etcd-client":
            self._warned = True
            log.warning(
                "discovery providers do not run on cores whose store is etcd (there is no "
                "Raft leader to run them); endpoints of discovered upstreams stay as written"
            )
        if not self.is_leader() or not declared.providers:
            if self.providers.running:
                log.info("discovery: providers stop on this core (no longer leader)")
            await self.providers.stop()
            return
        if not self.providers.running:
            log.info("discovery: this core is leader; starting the providers")
        await self.providers.follow(declared)
        merged = self.providers.current()
        if merged is not None:
            await self.commit(merged)

    async def stop(self) -> None:
        await self.providers.stop()

    # ------------------------------------------------------------------ state

    def role(self) -> str:
        return self.host.status()["role"]

    def is_leader(self) -> bool:
        return self.role() == "leader"

    def declared(self) -> Discovery:
        _, shared = self.host.config_in_force()
        try:
            return Discovery.model_validate((shared or {}).get("discovery") or {})
        except ValidationError:  # validated before commit; an old format is not fatal
            return Discovery()

    # ------------------------------------------------------------------ commits

    async def _on_change(self, merged: Pools) -> None:
        if not self.is_leader():
            raise StaleView("leadership moved")
        await self.commit(merged)

    async def commit(self, merged: Pools) -> None:
        """Commit the config in force with ``merged`` applied, if that changes it.

        Raises StaleView when another revision won the race (the watcher retries), and
        CommitUnavailable when the cluster could not commit."""
        async with self._lock:
            revision, current = self.host.config_in_force()
            if current is None:
                return  # no config yet: nothing names a pool
            proposed = apply_discovered(current, merged)
            if proposed == current or proposed == self._refused:
                return
            try:
                self.host.validate(proposed)  # the same checks as dispa apply
            except ConfigError as error:
                self._refused = proposed
                log.error(
                    "discovered endpoints refused, revision %d stays:\n%s", revision, error.render()
                )
                return
            result = await self.host.commit(proposed, revision, self.clock())
            if not result.get("ok"):
                raise StaleView(result.get("error", "refused"))
            if not result.get("unchanged"):
                log.info("discovery: endpoints committed as revision %d", result["revision"])

    # ------------------------------------------------------------------ status

    def providers_document(self) -> dict:
        status = self.host.status()
        leader_admin = None
        with contextlib.suppress(Exception):
            for member in self.host.members():
                if member.get("raft") == status["leader"]:
                    leader_admin = member.get("admin")
        return {
            "role": status["role"],
            "leader_admin": leader_admin,
            "providers": self.providers.document(self.declared(), "standby"),
        }
