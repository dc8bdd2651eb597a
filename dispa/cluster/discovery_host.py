"""The core's side of leader-run discovery: ``DiscoveryHost`` (dispa/discovery/host.py)
implemented on a core node's store, so discovery never imports the cluster."""

from __future__ import annotations

from collections.abc import Iterable

from dispa.cluster.admin_api import validate_shared
from dispa.cluster.bridge import CommandFailed
from dispa.discovery.host import CommitUnavailable


class CoreDiscoveryHost:
    def __init__(self, node) -> None:
        self.node = node  # a CoreNode (or anything with ``store`` and ``wait_changed``)

    def status(self) -> dict:
        return self.node.store.status()

    def config_in_force(self) -> tuple[int, dict | None]:
        state = self.node.store.state
        return state.revision, state.current_config()

    def members(self) -> Iterable[dict]:
        return self.node.store.state.members.values()

    async def wait_changed(self, timeout: float) -> None:
        await self.node.wait_changed(timeout)

    def validate(self, config: dict) -> None:
        validate_shared(config)

    async def commit(self, config: dict, expected_revision: int, now: float) -> dict:
        try:
            return await self.node.store.put_config(
                config, expected_revision, now, "discovery", "endpoints from providers"
            )
        except CommandFailed as failure:
            raise CommitUnavailable(failure.reason) from failure
