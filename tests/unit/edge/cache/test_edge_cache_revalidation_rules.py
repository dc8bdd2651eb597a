"""A 304 that freshens a stored response may also change its rules (RFC 9111 section
4.3.4): when the merged response may no longer be stored, the stored one goes. The 304
still answers the request that revalidated."""

from email.utils import formatdate

import pytest

from dispa.config.edge import CacheSettings
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.key import primary_key
from dispa.edge.edge_cache import EdgeCache
from dispa.proxy.caching import FETCH, CacheVerdict

NOW = 1_700_000_000.0
KEY = primary_key("GET", "https", "a.test", b"/x")


class _Request:
    method = "GET"
    headers: list = []


def _stored(cache: EdgeCache) -> CachedResponse:
    entry = CachedResponse.from_response(
        200,
        b"OK",
        [(b"Cache-Control", b"max-age=0"), (b"ETag", b'"v1"')],
        b"body",
        NOW - 10,
        NOW - 10,
        KEY.partition(" ")[2],
    )
    assert cache.entries.store(KEY, [], entry)
    return cache.entries.lookup(KEY, [])


def _revalidate(cache: EdgeCache, headers_304):
    verdict = CacheVerdict(FETCH, KEY, entry=_stored(cache), request_time=NOW)
    date = (b"Date", formatdate(NOW, usegmt=True).encode())
    return cache.plan_response(verdict, _Request(), 304, b"", [date, *headers_304], NOW)


@pytest.mark.parametrize(
    "headers_304",
    [
        [(b"ETag", b'"v1"'), (b"Cache-Control", b"no-store")],
        [(b"ETag", b'"v1"'), (b"Cache-Control", b"private, max-age=60")],
        [
            (b"ETag", b'"v1"'),
            (b"Cache-Control", b"max-age=60"),
            (b"CDN-Cache-Control", b"no-store"),
        ],
    ],
)
def test_a_304_that_forbids_storing_drops_the_entry_and_still_answers(headers_304):
    cache = EdgeCache(CacheSettings())
    plan = _revalidate(cache, headers_304)
    assert plan.answer is not None and plan.answer.status == 200
    assert plan.answer.body == b"body"
    assert cache.entries.lookup(KEY, []) is None


def test_a_304_that_allows_storing_freshens_the_entry():
    cache = EdgeCache(CacheSettings())
    plan = _revalidate(cache, [(b"ETag", b'"v1"'), (b"Cache-Control", b"max-age=60")])
    assert plan.answer is not None and plan.answer.status == 200
    stored = cache.entries.lookup(KEY, [])
    assert stored is not None and (b"Cache-Control", b"max-age=60") in stored.headers
