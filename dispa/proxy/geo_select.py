"""Which regions a `geo: nearest` request may go to, nearest first.

The data plane only asks; the answer comes from whoever located the client. An edge
hands the gateway a locator (``gateway.geo``, built on its geo database); a node without
one ranks its own region first, then the others in config order.
"""

from __future__ import annotations

from typing import Protocol


class RegionRanker(Protocol):
    def rank(self, client_ip: str, forwarded_for: list[bytes]) -> list[str]:
        """Region names, nearest first (every region of the config, each once)."""
        ...


def forwarded_for_values(headers) -> list[bytes]:
    return [
        value for name, value in headers if len(name) == 15 and name.lower() == b"x-forwarded-for"
    ]


def region_ranking(gateway, snapshot, ctx) -> list[str]:
    ranker = gateway.geo
    if ranker is not None:
        return ranker.rank(ctx.client_ip, forwarded_for_values(ctx.request.headers))
    names = snapshot.region_names
    own = gateway.region
    if own in names:
        return [own, *(name for name in names if name != own)]
    return list(names)
