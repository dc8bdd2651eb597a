"""Geo routing for the data plane: from a connection and its headers to a region.

Ranking is the expensive part (a database lookup, then a distance per region), and it
depends only on the client address, so it is remembered per address. Availability is not:
it changes from one request to the next, so it is asked on every call, walking the
remembered ranking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from dispa.edge.geo.bounded_cache import BoundedCache
from dispa.edge.geo.client_address import TrustedProxies, client_address
from dispa.edge.geo.locate import GeoLocator
from dispa.edge.geo.regions import Region, nearest_available, rank_regions

DEFAULT_RANKING_CACHE_SIZE = 10_000


class GeoRouter:
    """Built once per snapshot; ``locator`` None (no database configured) means every
    client gets the configured order of regions."""

    def __init__(
        self,
        locator: GeoLocator | None,
        regions: Sequence[Region],
        trusted: TrustedProxies,
        cache_size: int = DEFAULT_RANKING_CACHE_SIZE,
    ) -> None:
        counts = Counter(region.name for region in regions)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            # The name is what X-Dispa-Region and the metrics report: it must say which one.
            raise ValueError(f"duplicate region names: {', '.join(duplicates)}")
        self.locator = locator
        self.regions: tuple[Region, ...] = tuple(regions)
        self.trusted = trusted
        # Tuples, so a caller cannot reorder what the next request will be handed.
        self._rankings: BoundedCache[str, tuple[Region, ...]] = BoundedCache(cache_size)

    def ranking_for(self, address: str) -> tuple[Region, ...]:
        """Every region, nearest to ``address`` first."""
        ranking = self._rankings.get(address)
        if ranking is None:
            location = self.locator.locate(address) if self.locator is not None else None
            ranking = tuple(rank_regions(location, self.regions))
            self._rankings.put(address, ranking)
        return ranking

    def rank(self, client_ip: str, forwarded_for: list[bytes] | bytes | None) -> list[str]:
        """Region names, nearest first: what the data plane asks for a `geo: nearest` route
        (it checks availability itself, against each region's endpoints)."""
        address = client_address(client_ip, forwarded_for, self.trusted)
        return [region.name for region in self.ranking_for(address)]

    def choose(
        self,
        peer_ip: str,
        forwarded_for: list[bytes] | bytes | None,
        is_available: Callable[[Region], bool],
    ) -> tuple[Region | None, list[Region]]:
        """The nearest available region (None if none is) and the full ranking, nearest
        first, for falling back on failure and for the X-Dispa-Region header."""
        ranking = self.ranking_for(client_address(peer_ip, forwarded_for, self.trusted))
        return nearest_available(ranking, is_available), list(ranking)

    def statistics(self) -> dict[str, int]:
        return self._rankings.statistics()
