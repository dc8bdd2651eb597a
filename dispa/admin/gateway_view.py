"""The admin API's view of a gateway running in this process."""

from __future__ import annotations

from dispa.config.load import dump_plain
from dispa.proxy.server import Gateway


class LocalGatewayView:
    def __init__(self, gateway: Gateway, extra_snapshots=None) -> None:
        self.gateway = gateway
        # With worker processes, their published counters come from here.
        self.extra_snapshots = extra_snapshots

    def is_ready(self) -> bool:
        gateway = self.gateway
        snapshot = gateway.snapshot
        # Revision 0 is a core still waiting for its first config: it answers 503 to all.
        return (
            snapshot is not None
            and snapshot.revision > 0
            and not gateway.draining
            and bool(gateway.listeners)
        )

    def config_document(self) -> dict:
        snapshot = self.gateway.snapshot
        if snapshot is None:
            return {"revision": 0, "applied_at": None, "source": "", "config": None}
        return {
            "revision": snapshot.revision,
            "applied_at": snapshot.applied_at,
            "source": snapshot.source,
            "config": dump_plain(snapshot.config),
        }

    def upstreams_document(self) -> dict:
        upstreams = self.gateway.upstreams.by_name.values()
        return {"upstreams": [runtime.document() for runtime in upstreams]}

    def stats_snapshots(self) -> list[dict]:
        return [self.gateway.stats.snapshot()]
