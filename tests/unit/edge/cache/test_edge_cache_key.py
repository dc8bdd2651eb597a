"""Primary keys, Vary secondary keys, and surrogate-key tags."""

import pytest

from dispa.edge.cache.key import (
    normalize_url,
    primary_key,
    secondary_key,
    url_of,
    vary_key_for,
    vary_names,
)
from dispa.edge.cache.tags import tags_of

# ---------------------------------------------------------------- primary key


def test_head_shares_the_get_key():
    assert primary_key("HEAD", "https", "a.example", b"/x?y=1") == primary_key(
        "GET", "https", "a.example", b"/x?y=1"
    )


def test_other_methods_have_keys_of_their_own():
    assert primary_key("POST", "https", "a", b"/") != primary_key("GET", "https", "a", b"/")


def test_query_and_scheme_are_part_of_the_key():
    base = primary_key("GET", "https", "a", b"/x")
    assert primary_key("GET", "https", "a", b"/x?page=2") != base
    assert primary_key("GET", "http", "a", b"/x") != base


def test_scheme_host_case_and_default_ports_do_not_matter():
    assert url_of("HTTPS", "A.Example:443", b"/Path") == "https://a.example/Path"
    assert url_of("http", "a.example:80", "/") == "http://a.example/"
    assert url_of("http", "a.example:8080", b"/") == "http://a.example:8080/"


def test_empty_target_is_the_root():
    assert url_of("http", "a", b"") == "http://a/"


def test_normalize_url():
    assert normalize_url("HTTP://Host:80/a/B?c") == "http://host/a/B?c"
    assert normalize_url("https://host") == "https://host/"
    assert normalize_url("not a url") == "not a url"


def test_non_ascii_targets_survive():
    assert url_of("http", "a", "/café".encode()).startswith("http://a/caf")


# ---------------------------------------------------------------- Vary


def test_vary_names_are_lower_cased_distinct_and_sorted():
    headers = [(b"Vary", b"User-Agent, accept-encoding"), (b"vary", b"Accept-Encoding")]
    assert vary_names(headers) == (b"accept-encoding", b"user-agent")


def test_no_vary_gives_an_empty_secondary_key():
    assert vary_key_for([], [(b"Accept", b"text/html")]) == b""


def test_request_header_names_match_without_case_and_whitespace_is_normalized():
    names = (b"accept-encoding",)
    assert secondary_key(names, [(b"Accept-Encoding", b"gzip, br")]) == secondary_key(
        names, [(b"accept-encoding", b" gzip,br ")]
    )


def test_several_request_lines_equal_their_comma_joined_form():
    names = (b"accept",)
    assert secondary_key(names, [(b"Accept", b"a"), (b"Accept", b"b")]) == secondary_key(
        names, [(b"Accept", b"a, b")]
    )


def test_absent_and_empty_headers_are_different_variants():
    names = (b"x-mode",)
    assert secondary_key(names, []) != secondary_key(names, [(b"X-Mode", b"")])


@pytest.mark.parametrize(
    ("one", "other"), [(b"gzip", b"br"), (b"gzip", b"GZIP"), (b"gzip", b"gzip, br")]
)
def test_different_values_are_different_variants(one, other):
    names = (b"accept-encoding",)
    assert secondary_key(names, [(b"Accept-Encoding", one)]) != secondary_key(
        names, [(b"Accept-Encoding", other)]
    )


def test_unrelated_request_headers_do_not_matter():
    response = [(b"Vary", b"Accept-Encoding")]
    assert vary_key_for(response, [(b"Accept-Encoding", b"gzip"), (b"Cookie", b"a=1")]) == (
        vary_key_for(response, [(b"Cookie", b"b=2"), (b"Accept-Encoding", b"gzip")])
    )


# ---------------------------------------------------------------- tags


def test_cache_tag_is_comma_separated_and_surrogate_key_space_separated():
    headers = [
        (b"Cache-Tag", b"product-1, catalog"),
        (b"Content-Type", b"text/html"),
        (b"surrogate-key", b"catalog  user/7\tproduct-1"),
    ]
    assert tags_of(headers) == ("product-1", "catalog", "user/7")


def test_no_tags():
    assert tags_of([(b"ETag", b'"x"')]) == ()
    assert tags_of([(b"Cache-Tag", b" , ")]) == ()


def test_tags_are_text_and_bad_utf8_does_not_fail():
    assert tags_of([(b"Cache-Tag", "café".encode())]) == ("café",)
    assert tags_of([(b"Cache-Tag", b"\xff")]) == ("\ufffd",)
