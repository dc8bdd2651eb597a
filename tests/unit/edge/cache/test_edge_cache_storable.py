"""Which responses a shared cache may store (RFC 9111 section 3)."""

import pytest

from dispa.edge.cache.storable import headers_to_store, is_storable, why_not_storable

CACHEABLE = [(b"Cache-Control", b"max-age=60")]


def reason(status=200, response=CACHEABLE, request=(), method="GET"):
    return why_not_storable(method, list(request), status, list(response))


def test_a_plain_cacheable_response_is_storable():
    assert reason() is None
    assert is_storable("GET", [], 200, CACHEABLE)


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
def test_only_get_responses_are_stored(method):
    assert reason(method=method) == "method"
    assert not is_storable(method, [], 200, CACHEABLE)


@pytest.mark.parametrize("status", [100, 101, 206, 304, 600, 99])
def test_statuses_not_understood_are_not_stored(status):
    assert reason(status=status) == "status"


def test_no_store_in_the_response():
    assert reason(response=[(b"Cache-Control", b"max-age=60, no-store")]) == "no_store"


def test_no_store_in_the_request():
    assert reason(request=[(b"cache-control", b"no-store")]) == "no_store"


def test_private_responses_are_not_stored_by_a_shared_cache():
    assert reason(response=[(b"Cache-Control", b"private, max-age=60")]) == "private"
    assert reason(response=[(b"Cache-Control", b'private="Set-Cookie"')]) == "private"


def test_authorized_requests_need_the_origins_permission():
    authorized = [(b"Authorization", b"Bearer abc")]
    assert reason(request=authorized) == "authorization"
    for allowing in (b"max-age=60, public", b"s-maxage=60", b"max-age=60, must-revalidate"):
        assert reason(request=authorized, response=[(b"Cache-Control", allowing)]) is None


def test_vary_star_is_not_stored():
    response = [*CACHEABLE, (b"Vary", b"Accept-Encoding"), (b"vary", b"*")]
    assert reason(response=response) == "vary_star"


def test_set_cookie_is_stored_only_when_explicitly_shared():
    cookie = (b"Set-Cookie", b"session=1")
    assert reason(response=[*CACHEABLE, cookie]) == "set_cookie"
    assert reason(response=[(b"Cache-Control", b"public, max-age=60"), cookie]) is None
    assert reason(response=[(b"Cache-Control", b"s-maxage=60"), cookie]) is None


def test_a_status_not_cacheable_by_default_needs_explicit_freshness():
    assert reason(status=302, response=[(b"Location", b"/a")]) == "no_freshness"
    assert reason(status=302, response=[(b"Cache-Control", b"max-age=60")]) is None
    assert reason(status=503, response=[(b"Expires", b"0")]) is None
    assert reason(status=307, response=[(b"Cache-Control", b"public")]) is None


def test_a_validator_alone_does_not_make_a_response_storable():
    assert reason(status=302, response=[(b"ETag", b'"v1"')]) == "no_freshness"


def test_a_status_cacheable_by_default_needs_nothing_more():
    assert reason(status=404, response=[]) is None
    assert reason(status=200, response=[(b"ETag", b'"v1"')]) is None


def test_no_cache_responses_are_stored_to_be_revalidated():
    assert reason(response=[(b"Cache-Control", b"no-cache")]) is None


def test_headers_to_store_drop_hop_by_hop_fields_and_those_connection_names():
    headers = [
        (b"Content-Type", b"text/html"),
        (b"Connection", b"keep-alive, X-Trace"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Trace", b"abc"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"ETag", b'"v1"'),
    ]
    assert headers_to_store(headers) == [(b"Content-Type", b"text/html"), (b"ETag", b'"v1"')]
