from __future__ import annotations

import pytest
from geoip_test_data import AP, CHANGCHUN, EU, LONDON, MILTON, US

from dispa.edge.geo import GeoLocator, GeoRouter, Region, TrustedProxies

LOAD_BALANCER = "10.0.0.1"
TRUSTED = TrustedProxies(["10.0.0.0/8"])


def everywhere_up(region: Region) -> bool:
    return True


@pytest.fixture
def router(city_locator: GeoLocator, regions: list[Region]) -> GeoRouter:
    return GeoRouter(city_locator, regions, TRUSTED)


@pytest.mark.parametrize(
    ("ip", "chosen", "ranking"),
    [(LONDON, EU, [EU, US, AP]), (MILTON, US, [US, EU, AP]), (CHANGCHUN, AP, [AP, EU, US])],
)
def test_direct_client_is_sent_to_the_nearest_region(
    router: GeoRouter, ip: str, chosen: Region, ranking: list[Region]
) -> None:
    assert router.choose(ip, None, everywhere_up) == (chosen, ranking)


@pytest.mark.parametrize(("ip", "chosen"), [(LONDON, EU), (MILTON, US), (CHANGCHUN, AP)])
def test_country_database_router(
    country_locator: GeoLocator, regions: list[Region], ip: str, chosen: Region
) -> None:
    router = GeoRouter(country_locator, regions, TRUSTED)
    assert router.choose(ip, None, everywhere_up)[0] is chosen


def test_client_behind_trusted_proxy_is_located_from_x_forwarded_for(router: GeoRouter) -> None:
    chosen, ranking = router.choose(
        LOAD_BALANCER, [f"{LONDON}, {CHANGCHUN}".encode()], everywhere_up
    )
    assert chosen is AP
    assert ranking == [AP, EU, US]


def test_untrusted_peer_cannot_pick_its_region_with_x_forwarded_for(router: GeoRouter) -> None:
    chosen, _ = router.choose(MILTON, CHANGCHUN.encode(), everywhere_up)
    assert chosen is US


def test_nearest_unavailable_falls_back_to_the_next(router: GeoRouter) -> None:
    chosen, ranking = router.choose(LONDON, None, lambda region: region is not EU)
    assert chosen is US
    assert ranking == [EU, US, AP]  # the full ranking still, for the next fallback


def test_nothing_available_gives_none_and_the_ranking(router: GeoRouter) -> None:
    assert router.choose(CHANGCHUN, None, lambda region: False) == (None, [AP, EU, US])


def test_unknown_client_gets_the_configured_order(router: GeoRouter) -> None:
    assert router.choose("192.168.7.7", None, everywhere_up) == (EU, [EU, US, AP])
    assert router.choose(LOAD_BALANCER, b"unknown", everywhere_up) == (EU, [EU, US, AP])


def test_without_a_database_the_configured_order_is_used(regions: list[Region]) -> None:
    router = GeoRouter(None, regions, TRUSTED)
    assert router.choose(CHANGCHUN, None, everywhere_up) == (EU, [EU, US, AP])


def test_ranking_is_cached_per_client_address(router: GeoRouter) -> None:
    router.choose(LONDON, None, everywhere_up)
    router.choose(LOAD_BALANCER, LONDON.encode(), everywhere_up)  # same client, via a proxy
    router.choose(MILTON, None, everywhere_up)
    assert router.statistics() == {"size": 2, "capacity": 10_000, "hits": 1, "misses": 2}


def test_availability_is_asked_on_every_call_despite_the_cache(router: GeoRouter) -> None:
    assert router.choose(LONDON, None, everywhere_up)[0] is EU
    assert router.choose(LONDON, None, lambda region: region is not EU)[0] is US


def test_caller_cannot_corrupt_the_cached_ranking(router: GeoRouter) -> None:
    _, ranking = router.choose(LONDON, None, everywhere_up)
    ranking.clear()
    assert router.choose(LONDON, None, everywhere_up) == (EU, [EU, US, AP])


def test_ranking_cache_is_bounded(city_locator: GeoLocator, regions: list[Region]) -> None:
    router = GeoRouter(city_locator, regions, TRUSTED, cache_size=2)
    for ip in (LONDON, MILTON, CHANGCHUN, "10.9.9.9"):
        router.choose(ip, None, everywhere_up)
    assert router.statistics()["size"] == 2
    # Evicted clients are ranked again, identically.
    assert router.choose(LONDON, None, everywhere_up) == (EU, [EU, US, AP])


def test_no_regions_gives_none(city_locator: GeoLocator) -> None:
    assert GeoRouter(city_locator, [], TRUSTED).choose(LONDON, None, everywhere_up) == (None, [])


def test_duplicate_region_names_are_refused() -> None:
    twin = Region("eu", 48.85, 2.35)
    with pytest.raises(ValueError, match="duplicate region names: eu"):
        GeoRouter(None, [EU, US, twin], TRUSTED)
