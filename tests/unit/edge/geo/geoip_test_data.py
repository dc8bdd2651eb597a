"""Paths, addresses and regions shared by the geo tests (see tests/data/geoip/README.md)."""

from __future__ import annotations

from pathlib import Path

from dispa.edge.geo import Region

GEOIP_DATA = Path(__file__).parents[3] / "data" / "geoip"
CITY_DB = GEOIP_DATA / "GeoIP2-City-Test.mmdb"
COUNTRY_DB = GEOIP_DATA / "GeoIP2-Country-Test.mmdb"

# The addresses tests/data/geoip/README.md documents.
LONDON = "81.2.69.142"
MILTON = "216.160.83.56"
CHANGCHUN = "175.16.199.0"

EU = Region("eu", 51.51, -0.13, continents=frozenset({"EU", "AF"}), countries=frozenset({"GB"}))
US = Region("us", 38.95, -77.45, continents=frozenset({"NA", "SA"}), countries=frozenset({"US"}))
AP = Region("ap", 1.35, 103.82, continents=frozenset({"AS", "OC"}), countries=frozenset({"SG"}))
