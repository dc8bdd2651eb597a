"""A purge by URL finds what the data plane stored, however the purge spells the path.

The edge stores a response under ``scheme://host`` + the request's target in its one normal
form (dispa.proxy.request_target.origin_form). A purge names a URL as an operator writes
it, so it is normalised with the same function and the edge's listeners' path rules.
"""

import pytest

from dispa.config.edge import CacheSettings
from dispa.edge.cache.entry import CachedResponse
from dispa.edge.cache.key import primary_key, purge_key, url_of
from dispa.edge.edge_cache import EdgeCache
from dispa.proxy.request_target import DEFAULT_RULES, PathRefused, PathRules, origin_form

NOW = 1_700_000_000.0
KEEP_EVERYTHING = PathRules(merge_slashes=False, escaped_slashes="keep", escaped_nul="keep")


def stored(cache: EdgeCache, raw_target: bytes, rules: PathRules = DEFAULT_RULES) -> str:
    """Store a response as the data plane does for a request with ``raw_target``."""
    target = origin_form(raw_target, "GET", rules)[0]
    key = primary_key("GET", "https", "shop.example", target)
    entry = CachedResponse.from_response(
        200, b"OK", [(b"Cache-Control", b"max-age=60")], b"x", NOW, NOW, key.partition(" ")[2]
    )
    assert cache.entries.store(key, [], entry)
    return key


@pytest.mark.parametrize(
    ("request_target", "purge_path"),
    [
        (b"/a~b", "/a%7Eb"),  # an encoded unreserved character
        (b"/a%7eb", "/a~b"),  # ... on the request's side
        (b"/x/y", "//x/./y"),  # merged slashes and a dot segment
        (b"/x/y", "/x/%2e/y"),  # an encoded dot segment
        (b"/admin", "/x/../admin"),
        (b"/caf%C3%A9", "/caf%c3%a9"),  # escapes compare with upper-case hex
        (b"/p?q=%7e", "/p?q=%7e"),  # the query is kept as sent
    ],
)
def test_a_purge_finds_the_entry_however_the_path_is_spelled(request_target, purge_path):
    cache = EdgeCache(CacheSettings())
    key = stored(cache, request_target)
    assert cache.purge_url(f"https://shop.example{purge_path}") == 1
    assert cache.entries.lookup(key, []) is None


def test_a_purge_does_not_decode_what_the_data_plane_keeps_encoded():
    cache = EdgeCache(CacheSettings())
    stored(cache, b"/a%252e")
    assert cache.purge_url("https://shop.example/a%2e") == 0  # not the same resource
    assert cache.purge_url("https://shop.example/a%252e") == 1


def test_host_case_default_port_and_a_trailing_dot_do_not_matter():
    cache = EdgeCache(CacheSettings())
    stored(cache, b"/p")
    assert cache.purge_url("HTTPS://Shop.Example.:443/p") == 1


def test_an_entry_stored_under_a_trailing_dot_host_is_the_same_entry():
    # Routes see "shop.example." as "shop.example": the cache does too, so one purge
    # (and one origin fetch) covers both spellings.
    assert url_of("https", "Shop.Example.", b"/p") == url_of("https", "shop.example", b"/p")
    assert url_of("https", "shop.example.:8443", b"/p") == "https://shop.example:8443/p"
    assert url_of("http", "[::1]:80", b"/p") == "http://[::1]/p"


def test_an_edge_with_other_path_rules_purges_in_its_own_normal_form():
    cache = EdgeCache(CacheSettings(), path_rules=(KEEP_EVERYTHING,))
    kept = stored(cache, b"/bucket//a%2Fb", KEEP_EVERYTHING)
    assert kept.endswith("/bucket//a%2Fb")
    assert cache.purge_url("https://shop.example/bucket//a%2fb") == 1


def test_a_url_refused_by_every_rule_purges_nothing_and_does_not_raise():
    cache = EdgeCache(CacheSettings())
    stored(cache, b"/a")
    for url in ("https://shop.example/a%2Fb", "https://user@shop.example/a", "not a url"):
        assert cache.purge_url(url) == 0
    assert len(cache.entries) == 1


def test_purge_key_is_the_key_the_data_plane_records():
    assert purge_key("https://Shop.example/a%7Eb/./c?x=%7e") == "https://shop.example/a~b/c?x=%7e"
    assert purge_key("http://shop.example") == "http://shop.example/"
    assert purge_key("http://shop.example?q") == "http://shop.example/?q"
    assert purge_key("http://a//b", KEEP_EVERYTHING) == "http://a//b"


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/a%2Fb",  # an encoded '/': refused by the default rules
        "https://shop.example/a%00",  # an encoded NUL
        "https://shop.example/a#fragment",
        "https://shop.example/a b",
        "https://shop.example/%zz",
        "https://shop.example/..;/admin",
        "https://user@shop.example/",
        "ftp://shop.example/",
        "/just/a/path",
        "https://shop.example/café",
    ],
)
def test_purge_key_refuses_what_the_data_plane_refuses(url):
    with pytest.raises(PathRefused):
        purge_key(url)
