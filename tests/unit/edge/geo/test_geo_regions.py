from __future__ import annotations

import math

import pytest
from geoip_test_data import AP, CHANGCHUN, EU, LONDON, MILTON, US
from hypothesis import given
from hypothesis import strategies as st

from dispa.edge.geo import (
    GeoLocator,
    Location,
    Region,
    haversine_km,
    nearest_available,
    rank_regions,
)
from dispa.edge.geo.regions import EARTH_RADIUS_KM


@pytest.mark.parametrize(
    ("ip", "expected"),
    [(LONDON, [EU, US, AP]), (MILTON, [US, EU, AP]), (CHANGCHUN, [AP, EU, US])],
)
def test_city_database_ranks_by_distance(
    city_locator: GeoLocator, regions: list[Region], ip: str, expected: list[Region]
) -> None:
    assert rank_regions(city_locator.locate(ip), regions) == expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        (LONDON, [EU, US, AP]),  # GB is listed by eu
        (MILTON, [US, EU, AP]),  # US is listed by us; the rest keep the configured order
        (CHANGCHUN, [AP, EU, US]),  # CN is listed nowhere, but Asia is listed by ap
    ],
)
def test_country_database_ranks_by_country_then_continent(
    country_locator: GeoLocator, regions: list[Region], ip: str, expected: list[Region]
) -> None:
    assert rank_regions(country_locator.locate(ip), regions) == expected


def test_country_beats_continent_beats_configured_order() -> None:
    frankfurt = Region("eu-central", 50.11, 8.68, frozenset({"EU"}), frozenset({"DE"}))
    dublin = Region("eu-west", 53.35, -6.26, frozenset(), frozenset({"GB", "IE"}))
    virginia = Region("us-east", 38.95, -77.45, frozenset({"NA"}), frozenset({"US"}))
    configured = [virginia, frankfurt, dublin]
    in_britain = Location(None, None, "GB", "EU")
    in_france = Location(None, None, "FR", "EU")
    in_brazil = Location(None, None, "BR", "SA")
    assert rank_regions(in_britain, configured) == [dublin, frankfurt, virginia]
    assert rank_regions(in_france, configured) == [frankfurt, virginia, dublin]
    assert rank_regions(in_brazil, configured) == configured


def test_continent_only_location_is_matched_by_continent(
    city_locator: GeoLocator, regions: list[Region]
) -> None:
    location = city_locator.locate("2.3.3.1")  # the test data names only Europe here
    assert rank_regions(location, [US, AP, EU]) == [EU, US, AP]


@pytest.mark.parametrize("ip", ["10.0.0.1", "::1", "garbage"])
def test_unknown_client_gets_the_configured_order(
    city_locator: GeoLocator, regions: list[Region], ip: str
) -> None:
    assert rank_regions(city_locator.locate(ip), regions) == regions
    assert rank_regions(None, [AP, US, EU]) == [AP, US, EU]


def test_equal_distances_keep_the_configured_order() -> None:
    first = Region("first", 10.0, 10.0)
    twin = Region("twin", 10.0, 10.0)
    here = Location(0.0, 0.0, None, None)
    assert rank_regions(here, [first, twin]) == [first, twin]
    assert rank_regions(here, [twin, first]) == [twin, first]


def test_ranking_returns_a_new_list() -> None:
    configured = [EU, US]
    ranked = rank_regions(None, configured)
    ranked.reverse()
    assert configured == [EU, US]


def test_fallback_to_next_nearest_when_nearest_is_down(
    city_locator: GeoLocator, regions: list[Region]
) -> None:
    ranked = rank_regions(city_locator.locate(LONDON), regions)
    assert nearest_available(ranked, lambda region: True) is EU
    assert nearest_available(ranked, lambda region: region is not EU) is US
    assert nearest_available(ranked, lambda region: region is AP) is AP


def test_no_region_available_gives_none(regions: list[Region]) -> None:
    assert nearest_available(regions, lambda region: False) is None
    assert nearest_available([], lambda region: True) is None


def test_region_codes_are_normalised_from_any_iterable() -> None:
    region = Region("eu", 50.0, 8.0, ["eu", " Af"], ("gb", "de"))  # type: ignore[arg-type]
    assert region.continents == frozenset({"EU", "AF"})
    assert region.countries == frozenset({"GB", "DE"})
    assert region == Region("eu", 50.0, 8.0, frozenset({"EU", "AF"}), frozenset({"GB", "DE"}))
    assert hash(region) == hash(Region("eu", 50.0, 8.0, ("AF", "EU"), ("DE", "GB")))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("latitude", "longitude", "message"),
    [
        (91.0, 0.0, "latitude 91.0"),
        (0.0, -180.5, "longitude -180.5"),
        (float("nan"), 0.0, "latitude nan"),
    ],
)
def test_region_coordinates_are_checked(latitude: float, longitude: float, message: str) -> None:
    with pytest.raises(ValueError, match=f"region 'bad': {message}"):
        Region("bad", latitude, longitude)


def test_haversine_known_distances() -> None:
    # London to Paris is about 344 km; a quarter of the equator is about 10 008 km.
    assert haversine_km(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(343.5, abs=1.0)
    assert haversine_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(10_007.5, abs=1.0)
    # Across the date line the short way round, not across the whole map.
    assert haversine_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(111.2, abs=0.5)
    # Antipodes: half the circumference, without a math domain error.
    assert haversine_km(90.0, 0.0, -90.0, 0.0) == pytest.approx(20_015.1, abs=1.0)


latitudes = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
longitudes = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
codes = st.frozensets(st.sampled_from(["EU", "NA", "AS", "GB", "US", "CN"]), max_size=3)
region_lists = st.lists(
    st.builds(Region, st.text(max_size=3), latitudes, longitudes, codes, codes), max_size=8
)
locations = st.none() | st.builds(
    Location,
    st.none() | latitudes,
    st.none() | longitudes,
    st.none() | st.sampled_from(["GB", "US", "CN", "FR"]),
    st.none() | st.sampled_from(["EU", "NA", "AS", "SA"]),
)


@given(locations, region_lists)
def test_ranking_is_always_a_permutation(location: Location | None, regions: list[Region]) -> None:
    ranked = rank_regions(location, regions)
    assert len(ranked) == len(regions)
    assert sorted(map(id, ranked)) == sorted(map(id, regions))


@given(latitudes, longitudes, region_lists)
def test_ranking_by_coordinates_is_nearest_first(
    latitude: float, longitude: float, regions: list[Region]
) -> None:
    ranked = rank_regions(Location(latitude, longitude, None, None), regions)
    distances = [haversine_km(latitude, longitude, r.latitude, r.longitude) for r in ranked]
    assert distances == sorted(distances)


@given(latitudes, longitudes, latitudes, longitudes)
def test_haversine_is_symmetric_and_bounded(
    latitude1: float, longitude1: float, latitude2: float, longitude2: float
) -> None:
    there = haversine_km(latitude1, longitude1, latitude2, longitude2)
    back = haversine_km(latitude2, longitude2, latitude1, longitude1)
    assert there == pytest.approx(back, abs=1e-6)
    # Never more than half the circumference: the short way round is always taken.
    assert 0.0 <= there <= math.pi * EARTH_RADIUS_KM + 1e-6


@given(latitudes, longitudes)
def test_haversine_is_zero_on_identical_points(latitude: float, longitude: float) -> None:
    assert haversine_km(latitude, longitude, latitude, longitude) == 0.0
