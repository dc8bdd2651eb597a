"""What a core accepts as a purge URL: one that names a target its data plane could store.

A URL whose target the data plane refuses (``%2F`` under the default path rules) can
never match a cached entry, so it is answered 400 instead of being committed as a purge
that silently does nothing.
"""

import pytest

from dispa.cluster.purge_urls import purge_url_problem
from dispa.proxy.request_target import DEFAULT_RULES, PathRules

DEFAULT = (DEFAULT_RULES,)
KEEP_SLASHES = PathRules(escaped_slashes="keep")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/a~b",
        "https://shop.example/a%7Eb",  # becomes /a~b, as a request's would
        "http://shop.example//x/./y?q=%zz",  # the query is kept as sent
        "http://shop.example",
        "http://shop.example:8080?q",
        "HTTPS://[::1]:8443/p",
    ],
)
def test_urls_the_data_plane_accepts(url):
    assert purge_url_problem(url, DEFAULT) is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://shop.example/a%2Fb", "encoded '/'"),
        ("https://shop.example/a%5cb", "encoded '/' or '\\'"),
        ("https://shop.example/a%00", "encoded NUL"),
        ("https://shop.example/%zz", "two hex digits"),
        ("https://shop.example/..;/admin", "path parameter"),
        ("https://shop.example/a\\b", "cannot hold"),
        ("https://shop.example/a b", "cannot hold"),
        ("https://shop.example/a#top", "fragment"),
        ("https://shop.example/café", "percent-encode"),
        ("https://user@shop.example/", "userinfo"),
        ("https://shop.example:80:80/", "malformed authority"),
        ("ftp://shop.example/", "absolute http(s) URL"),
        ("/a/path", "absolute http(s) URL"),
        ("x", "absolute http(s) URL"),
        ("", "absolute http(s) URL"),
    ],
)
def test_urls_the_data_plane_refuses_say_why(url, said):
    problem = purge_url_problem(url, DEFAULT)
    assert problem is not None and said in problem, problem


def test_listeners_that_keep_encoded_slashes_can_purge_them():
    assert purge_url_problem("https://shop.example/a%2Fb", (DEFAULT_RULES, KEEP_SLASHES)) is None
    assert "escaped_slashes" in purge_url_problem("https://shop.example/a%2Fb", DEFAULT)


def test_a_non_string_is_a_problem_not_an_exception():
    assert "absolute http(s) URL" in purge_url_problem(["x"], DEFAULT)
    assert "absolute http(s) URL" in purge_url_problem(None, DEFAULT)
