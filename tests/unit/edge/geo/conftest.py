from __future__ import annotations

from collections.abc import Iterator

import pytest
from geoip_test_data import AP, CITY_DB, COUNTRY_DB, EU, US

from dispa.edge.geo import GeoLocator, Region


@pytest.fixture
def regions() -> list[Region]:
    return [EU, US, AP]


@pytest.fixture
def city_locator() -> Iterator[GeoLocator]:
    with GeoLocator(CITY_DB) as locator:
        yield locator


@pytest.fixture
def country_locator() -> Iterator[GeoLocator]:
    with GeoLocator(COUNTRY_DB) as locator:
        yield locator
