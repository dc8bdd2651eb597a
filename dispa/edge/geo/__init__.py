"""Geo routing for edge nodes: which region should serve a client, nearest first.

Pure apart from reading the GeoIP database: no sockets, no clocks, no configuration
parsing. The data plane calls ``GeoRouter.choose`` and tells it which regions are up.
"""

from __future__ import annotations

from dispa.edge.geo.bounded_cache import BoundedCache
from dispa.edge.geo.client_address import TrustedProxies, client_address
from dispa.edge.geo.locate import GeoDatabaseError, GeoLocator, Location
from dispa.edge.geo.regions import Region, haversine_km, nearest_available, rank_regions
from dispa.edge.geo.router import GeoRouter

__all__ = [
    "BoundedCache",
    "GeoDatabaseError",
    "GeoLocator",
    "GeoRouter",
    "Location",
    "Region",
    "TrustedProxies",
    "client_address",
    "haversine_km",
    "nearest_available",
    "rank_regions",
]
