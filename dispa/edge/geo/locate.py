"""Where a client address is, according to a MaxMind City or Country database.

A City database gives coordinates, so regions can be ranked by distance; a Country
database (smaller, and all some operators have) gives only the country and continent,
so regions are matched by those instead. Both are read through
``geoip2``; the kind is taken from the database's own metadata, not from its file name.

Lookups never raise: an address the database does not know (private ranges, loopback,
unallocated space) or one that is not an address at all is simply "unknown", and the
router falls back to the configured order of regions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geoip2.database
import geoip2.errors
import maxminddb

from dispa.edge.geo.bounded_cache import BoundedCache

DEFAULT_CACHE_SIZE = 10_000

# Cached alongside real locations, so that a private address is looked up only once.
_UNKNOWN = object()


class GeoDatabaseError(Exception):
    """The GeoIP database cannot be used; the message names the file and the cause."""


@dataclass(frozen=True, slots=True)
class Location:
    # None when the database is a Country database, or the record has no coordinates.
    latitude: float | None
    longitude: float | None
    country: str | None  # ISO 3166-1 alpha-2, e.g. "GB"
    continent: str | None  # MaxMind continent code: AF AN AS EU NA OC SA

    @property
    def has_coordinates(self) -> bool:
        return self.latitude is not None and self.longitude is not None


# A record that names no place at all (some networks carry only a registered country).
_NOWHERE = Location(latitude=None, longitude=None, country=None, continent=None)


def lookup_method_name(database_type: str) -> str:
    """The ``geoip2`` Reader method that reads a database of this type.

    Raises GeoDatabaseError for databases that carry no location (ASN, ISP, ...).
    """
    # Enterprise is a superset of City, but geoip2 only reads it through enterprise().
    if "Enterprise" in database_type:
        return "enterprise"
    if "City" in database_type:
        return "city"
    if "Country" in database_type:
        return "country"
    raise GeoDatabaseError(
        f"unsupported GeoIP database type {database_type!r}: a City or Country database is needed"
    )


class GeoLocator:
    def __init__(self, path: str | os.PathLike[str], cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        path = os.fspath(path)
        self.path = path
        # Values are a Location or _UNKNOWN, never None, so None from get() means "absent".
        # Built first: a bad size must fail before a file is opened that nobody would close.
        self._cache: BoundedCache[str, object] = BoundedCache(cache_size)
        try:
            self._reader = geoip2.database.Reader(path)
        except OSError as error:
            cause = error.strerror or str(error)
            raise GeoDatabaseError(f"cannot open GeoIP database {path}: {cause}") from error
        except (maxminddb.InvalidDatabaseError, ValueError) as error:
            raise GeoDatabaseError(
                f"cannot read GeoIP database {path}: not a valid MaxMind database ({error})"
            ) from error
        self.database_type: str = self._reader.metadata().database_type
        try:
            self.kind = lookup_method_name(self.database_type)
        except GeoDatabaseError as error:
            self._reader.close()
            raise GeoDatabaseError(f"{path}: {error}") from None
        self._lookup: Callable[[str], Any] = getattr(self._reader, self.kind)

    @property
    def has_coordinates(self) -> bool:
        """Whether this database can place clients on a map (City) or only in a country."""
        return self.kind != "country"

    def locate(self, ip: str) -> Location | None:
        cached = self._cache.get(ip)
        if cached is None:
            cached = self._locate_uncached(ip)
            self._cache.put(ip, cached)
        return cached if isinstance(cached, Location) else None

    def _locate_uncached(self, ip: str) -> object:
        try:
            record = self._lookup(ip)
        # ValueError: not an address, or the reader was closed. InvalidDatabaseError: a
        # corrupt record. Neither may escape into the data plane.
        except (geoip2.errors.GeoIP2Error, maxminddb.InvalidDatabaseError, ValueError):
            return _UNKNOWN
        coordinates = getattr(record, "location", None)
        location = Location(
            latitude=coordinates.latitude if coordinates is not None else None,
            longitude=coordinates.longitude if coordinates is not None else None,
            country=record.country.iso_code,
            continent=record.continent.code,
        )
        if location == _NOWHERE:
            return _UNKNOWN
        return location

    def statistics(self) -> dict[str, int]:
        return self._cache.statistics()

    def close(self) -> None:
        self._reader.close()
        self._cache.clear()

    def __enter__(self) -> GeoLocator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
