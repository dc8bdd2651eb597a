"""Regions ranked from nearest to farthest for one client. Pure: values in, values out.

With coordinates (City database) the great-circle distance decides (on a flat map, routes
across the poles and the date line look longer than they are). With only a country and a continent
(Country database) the operator's lists decide: regions that list the client's country,
then those that list its continent. Ties, and clients nobody can place, keep the
configured order, so the operator's first region is the default and rankings never flap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from dispa.edge.geo.locate import Location

# Mean Earth radius (IUGG); the error against the ellipsoid (< 0.5 %) cannot change which
# of two regions thousands of kilometres apart is nearer.
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    latitude: float
    longitude: float
    # MaxMind continent codes (EU, NA, AS, ...) and ISO country codes (GB, US, ...) this
    # region serves first when only a Country database is available.
    continents: frozenset[str] = field(default_factory=frozenset)
    countries: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0:
            raise ValueError(f"region {self.name!r}: latitude {self.latitude} not in [-90, 90]")
        if not -180.0 <= self.longitude <= 180.0:
            raise ValueError(f"region {self.name!r}: longitude {self.longitude} not in [-180, 180]")
        # Accept any iterable and any case from configuration; compare in upper case, as
        # the database writes its codes.
        object.__setattr__(self, "continents", _codes(self.continents))
        object.__setattr__(self, "countries", _codes(self.countries))


def _codes(codes: Iterable[str]) -> frozenset[str]:
    return frozenset(code.strip().upper() for code in codes)


def haversine_km(latitude1: float, longitude1: float, latitude2: float, longitude2: float) -> float:
    """Great-circle distance in kilometres between two points given in degrees."""
    phi1 = math.radians(latitude1)
    phi2 = math.radians(latitude2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(longitude2 - longitude1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    # min(): rounding can push a a hair above 1 for antipodal points, and asin would fail.
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def rank_regions(location: Location | None, regions: Sequence[Region]) -> list[Region]:
    """All ``regions``, nearest first; ties and unknown clients keep the configured order."""
    # sorted() is stable, which is what keeps ties in the configured order.
    if location is None:
        return list(regions)
    latitude, longitude = location.latitude, location.longitude
    if latitude is not None and longitude is not None:
        return sorted(
            regions,
            key=lambda region: haversine_km(latitude, longitude, region.latitude, region.longitude),
        )
    country, continent = location.country, location.continent

    def affinity(region: Region) -> int:
        if country is not None and country in region.countries:
            return 0
        if continent is not None and continent in region.continents:
            return 1
        return 2

    return sorted(regions, key=affinity)


def nearest_available(
    ranked: Iterable[Region], is_available: Callable[[Region], bool]
) -> Region | None:
    """The first region of ``ranked`` that can take traffic, or None if none can."""
    for region in ranked:
        if is_available(region):
            return region
    return None
