"""Serve, serve stale and refresh, or revalidate (RFC 9111 4.2.4 and 5.2.1, RFC 5861)."""

from email.utils import formatdate

import pytest

from dispa.edge.cache.decision import (
    Decision,
    decide,
    headers_for_client,
    only_if_cached_fails,
    serve_stale_on_error,
)
from dispa.edge.cache.entry import CachedResponse

NOW = 1_700_000_000.0
DAY = 86_400.0
FRESH = Decision.FRESH
SWR = Decision.STALE_WHILE_REVALIDATE
REVALIDATE = Decision.REVALIDATE


def http_date(seconds: float) -> bytes:
    return formatdate(seconds, usegmt=True).encode()


def stored(cache_control: bytes | None = None, *extra, status=200) -> CachedResponse:
    """A response that arrived at NOW, dated NOW, with the given Cache-Control."""
    headers = [(b"Date", http_date(NOW))]
    if cache_control is not None:
        headers.append((b"Cache-Control", cache_control))
    headers.extend(extra)
    return CachedResponse(status, b"OK", headers, b"body", NOW, NOW, "http://a/")


def request(cache_control: bytes | None = None, *extra):
    headers = [(b"Host", b"a")]
    if cache_control is not None:
        headers.append((b"Cache-Control", cache_control))
    return [*headers, *extra]


# ---------------------------------------------------------------- freshness


def test_fresh_until_max_age_then_revalidate():
    entry = stored(b"max-age=60")
    assert decide(entry, request(), NOW + 59) is FRESH
    assert decide(entry, request(), NOW + 60) is REVALIDATE


def test_s_maxage_overrides_max_age():
    entry = stored(b"max-age=1000, s-maxage=10")
    assert decide(entry, request(), NOW + 9) is FRESH
    assert decide(entry, request(), NOW + 20) is REVALIDATE


def test_expires_sets_the_lifetime():
    entry = stored(None, (b"Expires", http_date(NOW + 100)))
    assert decide(entry, request(), NOW + 99) is FRESH
    assert decide(entry, request(), NOW + 101) is REVALIDATE


def test_expires_zero_is_already_stale():
    assert decide(stored(None, (b"Expires", b"0")), request(), NOW) is REVALIDATE


def test_age_from_upstream_caches_shortens_freshness():
    entry = stored(b"max-age=60", (b"Age", b"50"))
    assert decide(entry, request(), NOW + 9) is FRESH
    assert decide(entry, request(), NOW + 11) is REVALIDATE


def test_heuristic_freshness_for_a_status_cacheable_by_default():
    entry = stored(None, (b"Last-Modified", http_date(NOW - 30 * DAY)))
    assert decide(entry, request(), NOW + DAY - 1) is FRESH  # 10% of 30 days, capped at 1
    assert decide(entry, request(), NOW + DAY + 1) is REVALIDATE


def test_no_heuristic_freshness_for_other_statuses():
    entry = stored(None, (b"Last-Modified", http_date(NOW - 30 * DAY)), status=302)
    assert decide(entry, request(), NOW + 1) is REVALIDATE


# ---------------------------------------------------------------- no-cache


def test_response_no_cache_always_revalidates():
    assert decide(stored(b"max-age=600, no-cache"), request(), NOW) is REVALIDATE
    assert decide(stored(b'max-age=600, no-cache="Set-Cookie"'), request(), NOW) is REVALIDATE


def test_request_no_cache_revalidates():
    assert decide(stored(b"max-age=600"), request(b"no-cache"), NOW) is REVALIDATE


def test_pragma_no_cache_counts_only_without_cache_control():
    entry = stored(b"max-age=600")
    pragma = (b"Pragma", b"No-Cache")
    assert decide(entry, request(None, pragma), NOW) is REVALIDATE
    assert decide(entry, request(b"max-stale=5", pragma), NOW) is FRESH
    assert decide(entry, request(None, (b"Pragma", b"x-other")), NOW) is FRESH


# ---------------------------------------------------------------- request directives


def test_request_max_age():
    entry = stored(b"max-age=600")
    assert decide(entry, request(b"max-age=0"), NOW + 1) is REVALIDATE
    assert decide(entry, request(b"max-age=100"), NOW + 50) is FRESH
    assert decide(entry, request(b"max-age=100"), NOW + 101) is REVALIDATE


def test_request_min_fresh():
    entry = stored(b"max-age=100")
    assert decide(entry, request(b"min-fresh=40"), NOW + 50) is FRESH
    assert decide(entry, request(b"min-fresh=60"), NOW + 50) is REVALIDATE


def test_request_max_stale():
    entry = stored(b"max-age=100")
    assert decide(entry, request(b"max-stale=60"), NOW + 130) is FRESH
    assert decide(entry, request(b"max-stale=10"), NOW + 130) is REVALIDATE
    assert decide(entry, request(b"max-stale"), NOW + 10 * DAY) is FRESH


@pytest.mark.parametrize(
    "response", [b"max-age=100, must-revalidate", b"max-age=100, proxy-revalidate", b"s-maxage=100"]
)
def test_max_stale_is_refused_where_the_origin_demands_revalidation(response):
    assert decide(stored(response), request(b"max-stale"), NOW + 130) is REVALIDATE


def test_request_max_age_with_max_stale_accepts_stale():
    entry = stored(b"max-age=100")
    assert decide(entry, request(b"max-age=200, max-stale=50"), NOW + 130) is FRESH
    assert decide(entry, request(b"max-age=120, max-stale=50"), NOW + 130) is REVALIDATE


# ---------------------------------------------------------------- stale-while-revalidate


def test_stale_while_revalidate_window():
    entry = stored(b"max-age=60, stale-while-revalidate=30")
    assert decide(entry, request(), NOW + 30) is FRESH
    assert decide(entry, request(), NOW + 75) is SWR
    assert decide(entry, request(), NOW + 90) is SWR
    assert decide(entry, request(), NOW + 91) is REVALIDATE


@pytest.mark.parametrize(
    "forbidding", [b"must-revalidate", b"proxy-revalidate", b"no-cache"], ids=bytes.decode
)
def test_stale_while_revalidate_yields_to_revalidation_directives(forbidding):
    entry = stored(b"max-age=60, stale-while-revalidate=30, " + forbidding)
    assert decide(entry, request(), NOW + 75) is REVALIDATE


def test_stale_while_revalidate_is_honoured_alongside_s_maxage():
    entry = stored(b"s-maxage=60, stale-while-revalidate=30")
    assert decide(entry, request(), NOW + 75) is SWR


@pytest.mark.parametrize("client", [b"min-fresh=1", b"max-age=100", b"no-cache"])
def test_a_client_that_wants_freshness_gets_no_stale_response(client):
    entry = stored(b"max-age=60, stale-while-revalidate=30")
    assert decide(entry, request(client), NOW + 75) is REVALIDATE


def test_stale_while_revalidate_is_preferred_to_plain_max_stale():
    # Both allow serving; the decision that also refreshes the entry wins.
    entry = stored(b"max-age=60, stale-while-revalidate=30")
    assert decide(entry, request(b"max-stale"), NOW + 75) is SWR
    assert decide(entry, request(b"max-stale"), NOW + 500) is FRESH


# ---------------------------------------------------------------- stale-if-error


def test_a_fresh_entry_may_always_stand_in_for_a_failed_origin():
    assert serve_stale_on_error(stored(b"max-age=60"), request(), NOW + 10)


def test_stale_if_error_from_the_response():
    entry = stored(b"max-age=60, stale-if-error=300")
    assert serve_stale_on_error(entry, request(), NOW + 360)
    assert not serve_stale_on_error(entry, request(), NOW + 361)


def test_stale_if_error_from_the_request():
    entry = stored(b"max-age=60")
    assert not serve_stale_on_error(entry, request(), NOW + 100)
    assert serve_stale_on_error(entry, request(b"stale-if-error=60"), NOW + 100)
    assert not serve_stale_on_error(entry, request(b"stale-if-error=10"), NOW + 100)


@pytest.mark.parametrize(
    "forbidding", [b"must-revalidate", b"proxy-revalidate", b"no-cache"], ids=bytes.decode
)
def test_stale_if_error_never_overrides_revalidation_directives(forbidding):
    entry = stored(b"max-age=60, stale-if-error=300, " + forbidding)
    assert not serve_stale_on_error(entry, request(b"stale-if-error=300"), NOW + 100)
    assert not serve_stale_on_error(entry, request(), NOW + 10)


def test_s_maxage_allows_the_origins_stale_if_error_but_not_the_clients():
    assert serve_stale_on_error(stored(b"s-maxage=60, stale-if-error=300"), request(), NOW + 100)
    assert not serve_stale_on_error(
        stored(b"s-maxage=60"), request(b"stale-if-error=300"), NOW + 100
    )


# ---------------------------------------------------------------- only-if-cached


def test_only_if_cached_fails_without_a_usable_entry():
    only = request(b"only-if-cached")
    assert only_if_cached_fails(only, None)
    assert only_if_cached_fails(only, REVALIDATE)
    assert not only_if_cached_fails(only, FRESH)
    assert not only_if_cached_fails(only, SWR)
    assert not only_if_cached_fails(request(), None)


# ---------------------------------------------------------------- Age on the way out


def test_headers_for_client_carry_the_current_age():
    entry = stored(b"max-age=60", (b"age", b"5"))
    headers = headers_for_client(entry, NOW + 10.7)
    assert [value for name, value in headers if name.lower() == b"age"] == [b"15"]
    assert (b"Cache-Control", b"max-age=60") in headers
    assert entry.headers[-1] == (b"age", b"5")  # the stored entry is left alone
