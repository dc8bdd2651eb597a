from __future__ import annotations

from pathlib import Path

import pytest
from geoip_test_data import CHANGCHUN, CITY_DB, COUNTRY_DB, LONDON, MILTON

from dispa.edge.geo import GeoDatabaseError, GeoLocator, Location
from dispa.edge.geo.locate import lookup_method_name


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        (LONDON, Location(51.5142, -0.0931, "GB", "EU")),
        (MILTON, Location(47.2513, -122.3149, "US", "NA")),
        (CHANGCHUN, Location(43.88, 125.3228, "CN", "AS")),
        # What a dual-stack socket reports for an IPv4 client.
        ("::ffff:81.2.69.142", Location(51.5142, -0.0931, "GB", "EU")),
        ("2001:218::1", Location(35.68536, 139.75309, "JP", "AS")),
    ],
)
def test_city_database_gives_coordinates_country_and_continent(
    city_locator: GeoLocator, ip: str, expected: Location
) -> None:
    location = city_locator.locate(ip)
    assert location == expected
    assert location is not None and location.has_coordinates


@pytest.mark.parametrize(
    ("ip", "country", "continent"),
    [(LONDON, "GB", "EU"), (MILTON, "US", "NA"), (CHANGCHUN, "CN", "AS")],
)
def test_country_database_gives_no_coordinates(
    country_locator: GeoLocator, ip: str, country: str, continent: str
) -> None:
    assert country_locator.locate(ip) == Location(None, None, country, continent)
    assert not country_locator.has_coordinates


def test_database_kind_comes_from_metadata(
    city_locator: GeoLocator, country_locator: GeoLocator
) -> None:
    assert (city_locator.database_type, city_locator.kind) == ("GeoIP2-City", "city")
    assert (country_locator.database_type, country_locator.kind) == ("GeoIP2-Country", "country")
    assert city_locator.has_coordinates


def test_record_with_only_a_continent_is_kept(city_locator: GeoLocator) -> None:
    # 2.3.3.0/24 in the test data names Europe and nothing else.
    assert city_locator.locate("2.3.3.1") == Location(None, None, None, "EU")


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",  # private
        "192.168.1.20",  # private
        "127.0.0.1",  # loopback
        "::1",  # loopback
        "1.1.1.1",  # public, not in the test data
        "214.1.1.1",  # in the data, but an anycast record naming no place
        "not-an-address",
        "",
        "81.2.69.142:443",
        "999.1.1.1",
    ],
)
def test_unknown_or_malformed_address_is_none(city_locator: GeoLocator, ip: str) -> None:
    assert city_locator.locate(ip) is None


def test_repeated_lookups_are_answered_from_the_cache(city_locator: GeoLocator) -> None:
    first = city_locator.locate(LONDON)
    assert city_locator.locate(LONDON) is first
    assert city_locator.locate("10.0.0.1") is None
    assert city_locator.locate("10.0.0.1") is None
    assert city_locator.statistics()["hits"] == 2
    assert city_locator.statistics()["misses"] == 2


def test_cache_is_bounded() -> None:
    with GeoLocator(CITY_DB, cache_size=2) as locator:
        for ip in (LONDON, MILTON, CHANGCHUN, "10.0.0.1", "10.0.0.2"):
            locator.locate(ip)
        assert locator.statistics()["size"] == 2
        # An evicted entry is looked up again, with the same answer.
        assert locator.locate(LONDON) == Location(51.5142, -0.0931, "GB", "EU")


def test_closed_locator_answers_none_instead_of_raising() -> None:
    locator = GeoLocator(CITY_DB)
    assert locator.locate(LONDON) is not None
    locator.close()
    assert locator.locate(LONDON) is None


def test_missing_file_error_names_path_and_cause(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "GeoLite2-City.mmdb"
    with pytest.raises(GeoDatabaseError) as caught:
        GeoLocator(path)
    assert str(caught.value) == f"cannot open GeoIP database {path}: No such file or directory"


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "city.mmdb"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(GeoDatabaseError, match=rf"cannot read GeoIP database {path}: not a valid"):
        GeoLocator(str(path))


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match=str(tmp_path)):
        GeoLocator(tmp_path)


@pytest.mark.parametrize(
    ("database_type", "method"),
    [
        ("GeoIP2-City", "city"),
        ("GeoLite2-City", "city"),
        ("DBIP-City-Lite", "city"),
        ("GeoIP2-Enterprise", "enterprise"),
        ("GeoIP2-Country", "country"),
        ("GeoLite2-Country", "country"),
    ],
)
def test_lookup_method_follows_database_type(database_type: str, method: str) -> None:
    assert lookup_method_name(database_type) == method


@pytest.mark.parametrize("database_type", ["GeoLite2-ASN", "GeoIP2-ISP", "GeoIP2-Anonymous-IP"])
def test_database_without_locations_is_refused(database_type: str) -> None:
    with pytest.raises(GeoDatabaseError, match="City or Country database is needed"):
        lookup_method_name(database_type)


def test_database_without_locations_is_refused_when_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test data here ships no ASN database: make the Country one claim to be one.
    class AsnMetadata:
        database_type = "GeoLite2-ASN"

    monkeypatch.setattr("geoip2.database.Reader.metadata", lambda self: AsnMetadata())
    with pytest.raises(GeoDatabaseError, match=rf"{COUNTRY_DB}: unsupported .*'GeoLite2-ASN'"):
        GeoLocator(COUNTRY_DB)
