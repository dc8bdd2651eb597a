"""Invalidation by unsafe methods (RFC 9111 section 4.4): a successful POST, PUT, DELETE,
PATCH or unknown method drops what is stored for its target URI, and for the Location and
Content-Location URIs of the same origin; never another origin's."""

import pytest

from dispa.config.edge import CacheSettings
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.invalidation import invalidates, urls_to_invalidate
from dispa.edge.cache.key import primary_key
from dispa.edge.edge_cache import EdgeCache
from dispa.proxy.caching import INVALIDATE
from dispa.proxy.context import RequestContext
from dispa.proxy.events import Request

NOW = 1_700_000_000.0
TARGET = "https://shop.example/c/a?x=1"

# ---------------------------------------------------------------- which methods


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "PURGE", "MKCOL", "FOO"])
def test_unsafe_and_unknown_methods_invalidate(method):
    assert invalidates(method)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_do_not(method):
    assert not invalidates(method)


# ---------------------------------------------------------------- which URLs


@pytest.mark.parametrize("status", [200, 201, 204, 301, 303, 307, 399])
def test_a_non_error_status_invalidates_the_target(status):
    assert urls_to_invalidate(TARGET, status, []) == [TARGET]


@pytest.mark.parametrize("status", [100, 101, 400, 404, 409, 500, 502, 503])
def test_an_error_status_invalidates_nothing(status):
    headers = [(b"Location", b"/c/b")]
    assert urls_to_invalidate(TARGET, status, headers) == []


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (b"/c/b", "https://shop.example/c/b"),
        (b"b", "https://shop.example/c/b"),  # relative to the target
        (b"../d", "https://shop.example/d"),
        (b"?y=2", "https://shop.example/c/a?y=2"),
        (b"https://shop.example/c/b", "https://shop.example/c/b"),
        (b"https://SHOP.example:443/c/b", "https://SHOP.example:443/c/b"),  # same origin
        (b"/c/b#part", "https://shop.example/c/b"),  # a fragment is not sent, nor stored
    ],
)
@pytest.mark.parametrize("field", [b"Location", b"Content-Location"])
def test_location_and_content_location_of_the_same_origin(field, location, expected):
    assert urls_to_invalidate(TARGET, 201, [(field, location)]) == [TARGET, expected]


@pytest.mark.parametrize(
    "location",
    [
        b"https://other.example/c/b",  # another host
        b"//other.example/c/b",  # another host, scheme-relative
        b"http://shop.example/c/b",  # another scheme
        b"https://shop.example:8443/c/b",  # another port
        b"https://shop.example.evil/c/b",
        b"https://user@other.example/c/b",
        b"http://[::1/broken",  # not a URI at all
        b"https://shop.example:99999/c/b",
        b"mailto:someone@shop.example",
        b"",
    ],
)
def test_another_origin_or_a_broken_uri_is_never_invalidated(location):
    headers = [(b"Location", location), (b"Content-Location", location)]
    assert urls_to_invalidate(TARGET, 201, headers) == [TARGET]


def test_both_fields_and_no_duplicates():
    headers = [(b"Location", b"/c/b"), (b"Content-Location", b"/c/a?x=1"), (b"x", b"y")]
    assert urls_to_invalidate(TARGET, 200, headers) == [TARGET, "https://shop.example/c/b"]


# ---------------------------------------------------------------- on an edge's cache


def _request(method: str, target: bytes, host: bytes = b"shop.example") -> Request:
    path, _, query = target.partition(b"?")
    return Request(
        stream_id=1,
        method=method,
        target=target,
        path=path.decode(),
        query=b"?" + query if query else b"",
        host=host.decode().split(":")[0],
        headers=[(b"host", host), (b"accept-encoding", b"gzip")],
        http_version="1.1",
        keep_alive=True,
        has_body=method not in ("GET", "HEAD"),
        content_length=0,
        host_header=host,
    )


def _context(request: Request) -> RequestContext:
    return RequestContext(request, "127.0.0.1", 5000, "public", "https", NOW)


def _store(cache: EdgeCache, target: bytes, vary: bytes = b"", accept: bytes = b"gzip") -> str:
    key = primary_key("GET", "https", "shop.example", target)
    headers = [(b"Cache-Control", b"max-age=60")]
    if vary:
        headers.append((b"Vary", vary))
    entry = CachedResponse.from_response(200, b"OK", headers, b"x", NOW, NOW, key.partition(" ")[2])
    assert cache.entries.store(key, [(b"accept-encoding", accept)], entry)
    return key


def _write(cache: EdgeCache, method: str, target: bytes, status: int, headers):
    request = _request(method, target)
    verdict = cache.invalidation(request, _context(request))
    assert verdict.action == INVALIDATE
    return cache.plan_response(verdict, request, status, b"", headers, NOW)


def test_a_successful_post_drops_every_variant_of_its_target_and_its_location():
    cache = EdgeCache(CacheSettings())
    _store(cache, b"/c/a", vary=b"Accept-Encoding", accept=b"gzip")
    _store(cache, b"/c/a", vary=b"Accept-Encoding", accept=b"br")
    _store(cache, b"/c/b")
    _store(cache, b"/c/other")
    assert len(cache.entries) == 4
    headers = [(b"Location", b"/c/b"), (b"Content-Type", b"text/plain")]
    plan = _write(cache, "POST", b"/c/a", 201, headers)
    # The response goes on as it came: nothing stored, nothing added, nothing answered.
    assert plan.headers == headers
    assert (plan.store, plan.answer) == (False, None)
    assert len(cache.entries) == 1
    assert cache.entries.lookup(primary_key("GET", "https", "shop.example", b"/c/other"), [])
    assert cache.statistics()["invalidated"] == 3


def test_a_failed_write_invalidates_nothing():
    cache = EdgeCache(CacheSettings())
    _store(cache, b"/c/a")
    _store(cache, b"/c/b")
    _write(cache, "DELETE", b"/c/a", 500, [(b"Location", b"/c/b")])
    _write(cache, "PUT", b"/c/a", 409, [])
    assert len(cache.entries) == 2


def test_a_location_on_another_host_invalidates_only_the_target():
    cache = EdgeCache(CacheSettings())
    _store(cache, b"/c/a")
    _store(cache, b"/c/b")
    _write(cache, "PATCH", b"/c/a", 200, [(b"Location", b"https://other.example/c/b")])
    assert len(cache.entries) == 1
    assert cache.entries.lookup(primary_key("GET", "https", "shop.example", b"/c/b"), [])


def test_a_location_spelled_otherwise_finds_the_normalised_entry():
    cache = EdgeCache(CacheSettings())
    _store(cache, b"/c/a~b")
    _write(cache, "POST", b"/c/x", 303, [(b"Location", b"/c/./a%7Eb")])
    assert len(cache.entries) == 0
