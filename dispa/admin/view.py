"""What the admin API may read from a running gateway, and nothing more.

The gateway runtime implements this; the admin app and the metrics collector only read
through it, so they can be tested with a small fake and never reach into the data plane.
Every method is called on the event loop thread and must return quickly without awaiting.
"""

from __future__ import annotations

from typing import Protocol


class AdminView(Protocol):
    def is_ready(self) -> bool:
        """True while listeners are bound and serving and the gateway is not draining.

        Read live: it flips to False as soon as a drain starts, so load balancers in front
        of the gateway stop sending new traffic before the listeners close.
        """
        ...

    def config_document(self) -> dict:
        """The snapshot in force, as plain JSON data.

        ``{"revision": int, "applied_at": float unix time, "source": str,
        "config": {...}}``. It describes the snapshot that new requests start on; requests
        already in flight may still finish on the previous one.
        """
        ...

    def upstreams_document(self) -> dict:
        """Upstream pools and the state of each endpoint.

        ``{"upstreams": [{"name", "lb", "endpoints": [{"address", "weight", "healthy",
        "active_health": "healthy" | "unhealthy" | "unchecked", "ejected",
        "active_requests", "idle_connections"}]}]}``.

        May be a moment stale: health comes from the last completed check, and with several
        worker processes the per-endpoint request and connection counts are taken from
        their last published state rather than asked for live.
        """
        ...

    def stats_snapshots(self) -> list[dict]:
        """One ``DataPlaneStats.snapshot()`` per worker process (one with a single worker).

        May be a moment stale: other workers publish their counters periodically, so a
        scrape can lag them by up to one publish interval. Counters never go backwards.
        """
        ...
