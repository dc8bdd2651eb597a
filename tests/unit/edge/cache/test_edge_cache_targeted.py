"""Targeted cache-control fields (RFC 9213): the first field of the target list that a
response carries, valid and non-empty, rules over Cache-Control and Expires for this
cache's decisions."""

from email.utils import formatdate

import pytest

from dispa.config.edge import CacheSettings
from dispa.edge.cache.cache_control import DELTA_SECONDS_LIMIT, CacheControl
from dispa.edge.cache.decision import Decision, decide, serve_stale_on_error
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.freshness import freshness_lifetime
from dispa.edge.cache.storable import why_not_storable
from dispa.edge.cache.targeted import DEFAULT_TARGETED_FIELDS, response_cache_control
from dispa.edge.edge_cache import EdgeCache
from dispa.proxy.caching import FETCH, CacheVerdict

NOW = 1_700_000_000.0
CDN = DEFAULT_TARGETED_FIELDS
OURS = (b"dispa-cache-control", b"cdn-cache-control")


def directives(value: bytes, targeted=CDN) -> CacheControl:
    return response_cache_control([(b"CDN-Cache-Control", value)], targeted)


# ---------------------------------------------------------------- directives


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"max-age=60", CacheControl(max_age=60, targeted=True)),
        (b"s-maxage=30, max-age=60", CacheControl(max_age=60, s_maxage=30, targeted=True)),
        (b"no-store", CacheControl(no_store=True, targeted=True)),
        (b"no-cache", CacheControl(no_cache=True, targeted=True)),
        (b'no-cache="set-cookie"', CacheControl(no_cache=True, targeted=True)),
        (b"no-cache=set-cookie", CacheControl(no_cache=True, targeted=True)),
        (b"private", CacheControl(private=True, targeted=True)),
        (b'private="x-user"', CacheControl(private=True, targeted=True)),
        (
            b"public, must-revalidate",
            CacheControl(public=True, must_revalidate=True, targeted=True),
        ),
        (b"proxy-revalidate", CacheControl(proxy_revalidate=True, targeted=True)),
        (
            b"max-age=10, stale-while-revalidate=20, stale-if-error=30",
            CacheControl(max_age=10, stale_while_revalidate=20, stale_if_error=30, targeted=True),
        ),
        (b"max-age=60;foo=bar", CacheControl(max_age=60, targeted=True)),  # parameters ignored
        (b"max-age=999999999999999", CacheControl(max_age=DELTA_SECONDS_LIMIT, targeted=True)),
        # Values of the wrong type are not consumed: the directive is ignored, not the field.
        (b"max-age=1.5", CacheControl(targeted=True)),
        (b'max-age="60"', CacheControl(targeted=True)),
        (b"max-age=-1", CacheControl(targeted=True)),
        (b"max-age=sixty", CacheControl(targeted=True)),
        (b"max-age=(60)", CacheControl(targeted=True)),
        (b"no-store=?0", CacheControl(targeted=True)),
        (b"no-store=1", CacheControl(targeted=True)),
        # Unknown directives mean nothing, but the field is still the one that rules.
        (b"none", CacheControl(targeted=True)),
        # Request-only directives mean nothing in a response.
        (b"max-stale=10, min-fresh=5, only-if-cached", CacheControl(targeted=True)),
    ],
)
def test_directives_of_a_targeted_field(value, expected):
    assert directives(value) == expected


@pytest.mark.parametrize("value", [b"", b"   ", b"max-age=60,", b"Max-Age=60", b"max-age=60;;"])
def test_an_empty_or_invalid_targeted_field_is_ignored(value):
    headers = [(b"Cache-Control", b"max-age=5"), (b"CDN-Cache-Control", value)]
    assert response_cache_control(headers, CDN) == CacheControl(max_age=5)


def test_several_lines_make_one_dictionary():
    headers = [(b"CDN-Cache-Control", b"max-age=60"), (b"cdn-cache-control", b"must-revalidate")]
    assert response_cache_control(headers, CDN) == CacheControl(
        max_age=60, must_revalidate=True, targeted=True
    )


def test_the_first_field_of_the_list_that_applies_wins():
    headers = [
        (b"Cache-Control", b"no-store"),
        (b"CDN-Cache-Control", b"max-age=10"),
        (b"Dispa-Cache-Control", b"max-age=20"),
    ]
    assert response_cache_control(headers, OURS).max_age == 20
    assert response_cache_control(headers, CDN).max_age == 10
    assert response_cache_control(headers, ()) == CacheControl(no_store=True)
    # An invalid first field passes the word to the next one.
    headers[2] = (b"Dispa-Cache-Control", b"max-age=20,,")
    assert response_cache_control(headers, OURS).max_age == 10


def test_a_field_not_on_the_list_changes_nothing():
    headers = [(b"Cache-Control", b"max-age=5"), (b"Other-Cache-Control", b"no-store")]
    assert response_cache_control(headers, OURS) == CacheControl(max_age=5)


# ---------------------------------------------------------------- freshness, storing, serving


def _date(seconds: float) -> bytes:
    return formatdate(seconds, usegmt=True).encode()


def test_expires_does_not_count_when_a_targeted_field_rules():
    headers = [
        (b"Date", _date(NOW)),
        (b"Expires", _date(NOW + 600)),
        (b"CDN-Cache-Control", b"must-revalidate"),
    ]
    assert freshness_lifetime(200, headers, NOW, response_cache_control(headers, CDN)) == 0.0
    assert freshness_lifetime(200, headers, NOW, response_cache_control(headers, ())) == 600.0


def test_storable_follows_the_targeted_field():
    no_store_for_others = [(b"Cache-Control", b"no-store"), (b"CDN-Cache-Control", b"max-age=60")]
    assert why_not_storable("GET", [], 200, no_store_for_others, CDN) is None
    assert why_not_storable("GET", [], 200, no_store_for_others, ()) == "no_store"
    no_store_here = [(b"Cache-Control", b"max-age=60"), (b"CDN-Cache-Control", b"no-store")]
    assert why_not_storable("GET", [], 200, no_store_here, CDN) == "no_store"
    private_here = [(b"Cache-Control", b"public, max-age=60"), (b"CDN-Cache-Control", b"private")]
    assert why_not_storable("GET", [], 200, private_here, CDN) == "private"
    # Expires alone no longer makes a 302 storable once the targeted field rules.
    expires_only = [(b"Expires", _date(NOW + 60)), (b"CDN-Cache-Control", b"none")]
    assert why_not_storable("GET", [], 302, expires_only, CDN) == "no_freshness"
    assert why_not_storable("GET", [], 302, expires_only, ()) is None


def _entry(headers, age: float = 0.0) -> CachedResponse:
    return CachedResponse(
        status=200,
        reason=b"OK",
        headers=((b"Date", _date(NOW - age)), *headers),
        body=b"x",
        request_time=NOW - age,
        response_time=NOW - age,
        url="https://a.test/x",
    )


def test_decide_and_stale_on_error_read_the_targeted_field():
    entry = _entry([(b"Cache-Control", b"max-age=10"), (b"CDN-Cache-Control", b"max-age=100")], 50)
    assert decide(entry, [], NOW, CDN) is Decision.FRESH
    assert decide(entry, [], NOW) is Decision.REVALIDATE
    entry = _entry(
        [(b"Cache-Control", b"max-age=10"), (b"CDN-Cache-Control", b"max-age=10, no-cache")], 5
    )
    assert decide(entry, [], NOW, CDN) is Decision.REVALIDATE
    entry = _entry(
        [(b"Cache-Control", b"max-age=1"), (b"CDN-Cache-Control", b"max-age=1, stale-if-error=60")],
        30,
    )
    assert serve_stale_on_error(entry, [], NOW, CDN)
    assert not serve_stale_on_error(entry, [], NOW)


# ---------------------------------------------------------------- the edge's settings


class _Request:
    method = "GET"
    headers: list = []


def _plan(settings: CacheSettings, headers):
    cache = EdgeCache(settings)
    verdict = CacheVerdict(FETCH, "GET https://a.test/x", request_time=NOW)
    return cache.plan_response(verdict, _Request(), 200, b"OK", headers, NOW)


def test_the_edge_cache_uses_its_target_list_and_an_empty_one_turns_it_off():
    headers = [(b"Cache-Control", b"no-store"), (b"CDN-Cache-Control", b"max-age=60")]
    assert _plan(CacheSettings(), headers).store
    assert not _plan(CacheSettings(targeted_fields=[]), headers).store
    ours = [(b"Cache-Control", b"no-store"), (b"Dispa-Cache-Control", b"max-age=60")]
    assert not _plan(CacheSettings(), ours).store
    assert _plan(CacheSettings(targeted_fields=["dispa-cache-control"]), ours).store
    # What goes to the client: the origin's fields, unchanged, and X-Cache.
    assert _plan(CacheSettings(), headers).headers == [*headers, (b"x-cache", b"MISS")]


def test_a_304_from_the_cache_carries_the_targeted_fields_as_it_does_cache_control():
    # They exist to guide caches, which a 304 updates (RFC 9110 section 15.4.5).
    cache = EdgeCache(CacheSettings(targeted_fields=["dispa-cache-control", "cdn-cache-control"]))
    entry = _entry(
        [
            (b"Cache-Control", b"max-age=60"),
            (b"CDN-Cache-Control", b"max-age=600"),
            (b"Dispa-Cache-Control", b"max-age=900"),
            (b"ETag", b'"v1"'),
            (b"Content-Type", b"text/plain"),
        ]
    )
    answer = cache._answer(entry, [(b"If-None-Match", b'"v1"')], NOW, b"HIT")
    assert answer.status == 304
    names = [name.lower() for name, _ in answer.headers]
    assert b"cdn-cache-control" in names and b"dispa-cache-control" in names
    assert b"cache-control" in names and b"content-type" not in names
