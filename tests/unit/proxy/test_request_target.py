"""Request targets to their one origin-form (RFC 9112 3.2), for both protocols."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy.http1.parser import ProtocolError, RequestParser
from dispa.proxy.http2.headers import MalformedRequest, request_from_headers
from dispa.proxy.request_target import (
    DEFAULT_RULES,
    PathRefused,
    PathRules,
    origin_form,
    path_rules_of,
    valid_authority,
)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a?b", (b"/a?b", b"/a", b"?b", None)),
        (b"/a/../b?x=/../", (b"/b?x=/../", b"/b", b"?x=/../", None)),
        (b"http://h.example/a", (b"/a", b"/a", b"", b"h.example")),
        (b"HTTPS://H.example:8443", (b"/", b"/", b"", b"H.example:8443")),
        (b"http://h?x", (b"/?x", b"/", b"?x", b"h")),
        (b"http://[::1]:80/%7e", (b"/~", b"/~", b"", b"[::1]:80")),
        (b"http://10.0.0.1//x", (b"/x", b"/x", b"", b"10.0.0.1")),
    ],
)
def test_origin_form(target, expected):
    assert origin_form(target, "GET") == expected


def test_a_normal_target_is_returned_as_it_came():
    target = b"/api/v1/users?id=1"
    assert origin_form(target, "GET")[0] is target


def test_asterisk_is_for_options_only():
    assert origin_form(b"*", "OPTIONS") == (b"*", b"*", b"", None)
    with pytest.raises(PathRefused):
        origin_form(b"*", "GET")


@pytest.mark.parametrize(
    "target",
    [
        b"admin",
        b"",
        b"ftp://h/a",
        b"http://u:p@h/a",
        b"http://@h/a",
        b"http:///a",
        b"http://h:port/a",
        b"http://h#x/a",
        b"/a?b#c",
        b"/a?b\x00",
        b"/a?\xff",
        b"/a?b c",
    ],
)
def test_refused_targets(target):
    with pytest.raises(PathRefused):
        origin_form(target, "GET")


def test_absolute_form_is_not_an_http2_path():
    with pytest.raises(PathRefused):
        origin_form(b"http://h/a", "GET", absolute_allowed=False)


def test_rules_of_listener_settings_are_shared_instances():
    class Settings:
        merge_slashes = False
        escaped_slashes = "keep"
        escaped_nul = "reject"

    assert path_rules_of(None) is DEFAULT_RULES
    assert path_rules_of(Settings()) is path_rules_of(Settings())
    assert path_rules_of(Settings()) == PathRules(False, "keep", "reject")


# ---------------------------------------------------------------- both parsers agree


def h1_request(target: bytes, rules: PathRules = DEFAULT_RULES):
    parser = RequestParser(65536, 0, rules)
    return parser.feed(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")[0]


def h2_request(target: bytes, rules: PathRules = DEFAULT_RULES):
    block = ((b":method", b"GET"), (b":scheme", b"http"), (b":path", target), (b":authority", b"h"))
    return request_from_headers(1, block, True, 0, rules)


PIECES = ["/", "/", ".", "..", "%2e", "%2f", "%41", "%7e", "a", ";", "|", "?", "=", "%00"]
targets = st.lists(st.sampled_from(PIECES), max_size=10).map(lambda p: ("/" + "".join(p)).encode())
rule_sets = st.builds(
    PathRules,
    st.booleans(),
    st.sampled_from(["reject", "keep", "unescape"]),
    st.sampled_from(["reject", "keep"]),
)


@settings(max_examples=200, deadline=None)
@given(targets, rule_sets)
def test_http1_and_http2_give_the_same_target_path_and_query(target, rules):
    try:
        one = h1_request(target, rules)
    except ProtocolError as error:
        assert error.status == 400
        with pytest.raises(MalformedRequest):
            h2_request(target, rules)
        return
    two = h2_request(target, rules)
    assert (one.target, one.path, one.query) == (two.target, two.path, two.query)
    assert one.target == one.path.encode() + one.query


def test_remembered_heads_are_kept_apart_by_rules():
    """The parser's table of heads read before answers with what the bytes meant under
    the parser's own rules: the same bytes on a listener that keeps empty segments are
    not the merged path another listener remembered."""
    data = b"GET //a HTTP/1.1\r\nHost: h\r\n\r\n"
    merging = RequestParser(65536, 0, DEFAULT_RULES)
    keeping = RequestParser(65536, 0, path_rules_of(PathRules(merge_slashes=False)))
    for _ in range(3):
        assert merging.feed(data)[0].target == b"/a"
        assert keeping.feed(data)[0].target == b"//a"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (b"example.com", True),
        (b"Example.COM:8080", True),
        (b"example.com.", True),
        (b"10.0.0.1:80", True),
        (b"[2001:db8::1]:443", True),
        (b"my_host", True),
        (b"user@example.com", False),
        (b"example.com/x", False),
        (b"a.com, b.com", False),
        (b"a.com%2e", False),
        (b"a.com:80:80", False),
        (b"a.com:", True),  # an empty port is allowed (RFC 3986 3.2.3)
        (b"", False),
    ],
)
def test_authority_shapes(value, valid):
    assert valid_authority(value) is valid


def test_a_host_field_that_is_not_a_host_is_a_400_in_both_protocols():
    parser = RequestParser(65536)
    with pytest.raises(ProtocolError) as caught:
        parser.feed(b"GET / HTTP/1.1\r\nHost: user@h\r\n\r\n")
    assert caught.value.status == 400
    block = ((b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"u@h"))
    with pytest.raises(MalformedRequest):
        request_from_headers(1, block, True)
    # Empty is fine in HTTP/1.1 (a target without an authority), never as :authority.
    assert RequestParser(65536).feed(b"GET / HTTP/1.1\r\nHost: \r\n\r\n")[0].host == ""
    with pytest.raises(MalformedRequest):
        request_from_headers(1, (*block[:3], (b":authority", b"")), True)
