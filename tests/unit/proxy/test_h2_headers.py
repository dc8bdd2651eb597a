"""HTTP/2 header blocks to Request events and back: the same Request the HTTP/1.1 parser makes."""

from __future__ import annotations

import pytest

from dispa.proxy.http1.parser import RequestParser, ResponseParser
from dispa.proxy.http2.headers import MalformedRequest, request_from_headers, response_headers


def block(method=b"GET", path=b"/a/b?x=1", authority=b"Example.COM:8443", *extra):
    pseudo = [(b":method", method), (b":scheme", b"http"), (b":path", path)]
    if authority is not None:
        pseudo.append((b":authority", authority))
    return (*pseudo, *extra)  # the engine hands over header blocks as tuples


def test_a_get_becomes_the_request_the_http1_parser_would_make():
    request = request_from_headers(
        5, block(b"GET", b"/a/b?x=1", b"Example.COM:8443", (b"x-request-id", b"abc")), True
    )
    (h1,) = [
        e
        for e in RequestParser(65536).feed(
            b"GET /a/b?x=1 HTTP/1.1\r\nhost: Example.COM:8443\r\nx-request-id: abc\r\n\r\n"
        )
        if type(e).__name__ == "Request"
    ]
    assert request.stream_id == 5
    for field in ("method", "target", "path", "query", "host", "headers", "host_header"):
        assert getattr(request, field) == getattr(h1, field), field
    assert request.request_id == b"abc"
    assert (request.http_version, request.keep_alive) == ("2", True)
    assert (request.has_body, request.content_length) == (False, None)


def test_no_pseudo_headers_reach_the_headers_and_cookies_are_joined():
    request = request_from_headers(
        1,
        block(
            b"POST", b"/", b"h.test", (b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")
        ),
        False,
    )
    assert all(not name.startswith(b":") for name, _ in request.headers)
    # :authority becomes Host for the HTTP/1.1 upstream; split cookies become one field.
    assert request.headers == [(b"host", b"h.test"), (b"accept", b"*/*"), (b"cookie", b"a=1; b=2")]


@pytest.mark.parametrize(
    ("end_stream", "extra", "has_body", "content_length"),
    [
        (True, (), False, None),
        (False, (), True, None),  # length unknown: forwarded chunked
        (False, ((b"content-length", b"12"),), True, 12),
        (False, ((b"content-length", b"0"),), False, 0),
    ],
)
def test_has_body_follows_end_stream_and_content_length(
    end_stream, extra, has_body, content_length
):
    request = request_from_headers(1, block(b"POST", b"/", b"h", *extra), end_stream)
    assert (request.has_body, request.content_length) == (has_body, content_length)


def test_expect_continue_is_read():
    request = request_from_headers(
        1, block(b"PUT", b"/", b"h", (b"expect", b"100-continue")), False
    )
    assert request.expect_continue


@pytest.mark.parametrize(
    ("headers", "max_body", "status"),
    [
        (block(b"POST", b"/", b"h", (b"content-length", b"ten")), 0, 400),
        (block(b"POST", b"/", b"h", (b"content-length", b"2000")), 1000, 413),
        (block(b"GET", b"/", b"a.test", (b"host", b"b.test")), 0, 400),
        (((b":method", b"CONNECT"), (b":authority", b"h:443")), 0, 501),
    ],
)
def test_malformed_requests_name_their_answer(headers, max_body, status):
    with pytest.raises(MalformedRequest) as raised:
        request_from_headers(1, headers, False, max_body)
    assert raised.value.status == status


def test_without_authority_the_host_header_is_used():
    request = request_from_headers(1, block(b"GET", b"/", None, (b"host", b"H.test:80")), True)
    assert (request.host, request.host_header) == ("h.test", b"H.test:80")


def test_response_headers_drop_hop_by_hop_and_lower_case_names():
    headers = [
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"keep-alive, X-Hop"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Length", b"999"),
        (b"Via", b"1.1 upstream"),
    ]
    out = response_headers(200, headers, 5, b"rid-1")
    assert out[0] == (b":status", b"200")
    assert out[1:] == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", b"rid-1"),
        (b"via", b"1.1 upstream, 1.1 dispa"),
        (b"content-length", b"5"),
    ]


def test_an_upstream_request_id_wins_and_local_replies_have_no_via():
    out = response_headers(404, [(b"X-Request-Id", b"up")], 3, b"ours", proxied=False)
    assert out == [(b":status", b"404"), (b"x-request-id", b"up"), (b"content-length", b"3")]


def test_no_content_length_on_204():
    assert response_headers(204, [], 0, None, proxied=False) == [(b":status", b"204")]


def test_a_repeated_block_gives_each_request_its_own_headers():
    repeated = block(b"GET", b"/r?q=1", b"a.test", (b"x-one", b"1"))
    first = request_from_headers(1, repeated, True)
    first.headers.append((b"x-added-by-a-filter", b"yes"))
    second = request_from_headers(3, repeated, False)
    third = request_from_headers(5, repeated, True)
    assert (first.stream_id, second.stream_id, third.stream_id) == (1, 3, 5)
    assert third.headers == [(b"host", b"a.test"), (b"x-one", b"1")]
    assert third.headers is not first.headers
    assert (third.path, third.query, third.host) == ("/r", b"?q=1", "a.test")
    # END_STREAM is part of what the block means: the second request has a body.
    assert (first.has_body, second.has_body, third.has_body) == (False, True, False)


def test_a_repeated_malformed_block_is_refused_every_time():
    repeated = block(b"GET", b"/", b"a.test", (b"content-length", b"x"))
    for _ in range(2):
        with pytest.raises(MalformedRequest):
            request_from_headers(1, repeated, False)


def test_a_repeated_block_is_checked_against_each_body_limit():
    repeated = block(b"POST", b"/", b"a.test", (b"content-length", b"100"))
    assert request_from_headers(1, repeated, False, max_body_bytes=1000).content_length == 100
    with pytest.raises(MalformedRequest) as refused:
        request_from_headers(3, repeated, False, max_body_bytes=10)
    assert refused.value.status == 413


def test_a_plain_connection_field_is_dropped_and_the_rest_kept():
    headers = [
        (b"Server", b"nginx"),
        (b"Connection", b"keep-alive"),
        (b"Close", b"kept: not named by the Connection field"),
        (b"X-Request-Id", b"up"),
    ]
    for _ in range(2):  # the second time from what was remembered of each name
        out = response_headers(200, headers, 2, b"ours")
        assert out == [
            (b":status", b"200"),
            (b"server", b"nginx"),
            (b"close", b"kept: not named by the Connection field"),
            (b"x-request-id", b"up"),
            (b"via", b"1.1 dispa"),
            (b"content-length", b"2"),
        ]


def test_the_connection_field_is_dropped_and_what_it_named_was_removed_on_receipt():
    # The response parser removes the fields a Connection header names (here "Close");
    # the block drops the Connection field itself and keeps what a filter added since.
    arrived = (
        ResponseParser()
        .feed(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nClose: x\r\nServer: s\r\n"
            b"Content-Length: 0\r\n\r\n"
        )[0]
        .headers
    )
    added = [*arrived, (b"close", b"added-by-a-filter")]
    out = response_headers(200, added, None, None, proxied=False)
    assert out == [(b":status", b"200"), (b"server", b"s"), (b"close", b"added-by-a-filter")]


def test_an_unusual_status_is_still_encoded():
    assert response_headers(799, [], None, None, proxied=False) == [(b":status", b"799")]


def test_what_is_remembered_of_field_names_stays_bounded():
    from dispa.proxy.http2 import headers as h2_headers

    for number in range(h2_headers._NAMES_LIMIT + 10):
        response_headers(200, [(b"X-Invented-%d" % number, b"1")], None, None)
    assert len(h2_headers._NAMES) <= h2_headers._NAMES_LIMIT
