"""HTTP/1.1 parsing: bytes in, events out, limits enforced while parsing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy.events import Data, EndOfMessage, InterimResponse, Request, Response
from dispa.proxy.http1.parser import ProtocolError, RequestParser, ResponseParser, UpgradeRequested


def parse(data: bytes, max_head: int = 65536, max_body: int = 0) -> list:
    return RequestParser(max_head, max_body).feed(data)


def refused(data: bytes, max_head: int = 65536, max_body: int = 0) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse(data, max_head, max_body)
    return caught.value


def body_of(events: list) -> bytes:
    return b"".join(e.data for e in events if type(e) is Data)


# ------------------------------------------------------------------ requests


def test_simple_get():
    events = parse(b"GET /index.html?a=1&b=2 HTTP/1.1\r\nHost: Example.com\r\nX-A: 1\r\n\r\n")
    assert len(events) == 2
    request, end = events
    assert request == Request(
        stream_id=1,
        method="GET",
        target=b"/index.html?a=1&b=2",
        path="/index.html",
        query=b"?a=1&b=2",
        host="example.com",
        headers=[(b"Host", b"Example.com"), (b"X-A", b"1")],
        http_version="1.1",
        keep_alive=True,
        has_body=False,
        content_length=None,
        host_header=b"Example.com",
    )
    assert end == EndOfMessage(1)


def test_request_id_and_expect_are_read_in_the_same_pass():
    (request, _) = parse(
        b"PUT / HTTP/1.1\r\nHost: a\r\nX-Request-Id: r-1\r\nExpect: 100-Continue\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert request.request_id == b"r-1"
    assert request.expect_continue is True
    (plain, _) = parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert plain.request_id is None and plain.expect_continue is False


def test_keep_alive_and_close():
    assert parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[0].keep_alive
    assert not parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")[0].keep_alive
    assert not parse(b"GET / HTTP/1.0\r\n\r\n")[0].keep_alive
    assert parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")[0].keep_alive


def test_keep_alive_requests_on_one_parser_get_new_stream_ids():
    parser = RequestParser(65536)
    first = parser.feed(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    second = parser.feed(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [type(e) for e in first + second] == [Request, EndOfMessage] * 2
    assert (first[0].stream_id, second[0].stream_id, second[1].stream_id) == (1, 2, 2)
    assert second[0].path == "/b"


def test_pipelined_requests_in_one_read():
    parser = RequestParser(65536)
    events = parser.feed(
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"DELETE /c HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab"
    )
    assert [(type(e).__name__, e.stream_id) for e in events] == [
        ("Request", 1),
        ("EndOfMessage", 1),
        ("Request", 2),
        ("Data", 2),
        ("EndOfMessage", 2),
        ("Request", 3),
        ("Data", 3),
    ]
    assert [e.method for e in events if type(e) is Request] == ["GET", "POST", "DELETE"]
    assert parser.in_message
    assert parser.feed(b"cd") == [Data(3, b"cd"), EndOfMessage(3)]
    assert not parser.in_message


def test_content_length_body_across_reads():
    parser = RequestParser(65536)
    events = parser.feed(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello")
    assert events[0].has_body
    assert events[0].content_length == 11
    assert parser.in_message
    events += parser.feed(b" world")
    assert body_of(events) == b"hello world"
    assert events[-1] == EndOfMessage(1)


def test_content_length_zero_has_no_body():
    request = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")[0]
    assert not request.has_body
    assert request.content_length == 0


def test_chunked_body():
    events = parse(
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-A: x\r\n\r\n"
    )
    request = events[0]
    assert request.has_body
    assert request.content_length is None
    assert body_of(events) == b"hello world"
    assert events[-1] == EndOfMessage(1)


def test_chunked_wins_when_a_coding_precedes_it():
    request = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    )[0]
    assert request.has_body
    assert request.content_length is None


def test_absolute_form_target_becomes_origin_form_with_its_authority_as_host():
    request = parse(
        b"GET http://Example.COM:8080/p/%7eq?x=1 HTTP/1.1\r\nHost: other.org\r\nX-A: 1\r\n\r\n"
    )[0]
    # RFC 9112 3.2.2: routed by the target's authority, forwarded in origin-form with a
    # Host made from that authority (the client's own Host is not sent on).
    assert request.target == b"/p/~q?x=1"
    assert request.path == "/p/~q"
    assert request.query == b"?x=1"
    assert request.host == "example.com"
    assert request.host_header == b"Example.COM:8080"
    assert request.headers == [(b"Host", b"Example.COM:8080"), (b"X-A", b"1")]


def test_absolute_form_without_a_path():
    request = parse(b"GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")[0]
    assert (request.path, request.query, request.host) == ("/", b"?x=1", "example.com")
    assert request.target == b"/?x=1"
    assert request.headers == [(b"Host", b"example.com")]


def test_absolute_form_gives_an_http10_request_its_host():
    request = parse(b"GET http://example.com/a HTTP/1.0\r\n\r\n")[0]
    assert (request.target, request.host, request.host_header) == (
        b"/a",
        "example.com",
        b"example.com",
    )
    assert request.headers == [(b"Host", b"example.com")]


@pytest.mark.parametrize(
    "target",
    [
        b"http://user@example.com/p",  # userinfo: RFC 9110 4.2.4
        b"ftp://example.com/p",
        b"http:///p",
        b"http://exa mple.com/p",
        b"http://example.com:80x/p",
        b"*",  # not OPTIONS
        b"/a/%zz",
        b"/a/%2f",
        b"/a#fragment",
        b"/a\\b",
        b"/x/..;/admin",
    ],
)
def test_targets_without_one_meaning_are_refused(target):
    error = refused(b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert error.status == 400


def test_request_paths_are_normalised_once_in_the_parser():
    request = parse(b"GET //a/./b/../%7e%2e%41?q=/../ HTTP/1.1\r\nHost: h\r\n\r\n")[0]
    assert (request.target, request.path, request.query) == (b"/a/~.A?q=/../", "/a/~.A", b"?q=/../")


def test_asterisk_form():
    request = parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")[0]
    assert request.path == "*"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"example.com", "example.com"),
        (b"Example.COM:8080", "example.com"),
        (b"[::1]:8080", "[::1]"),
        (b"[2001:DB8::1]", "[2001:db8::1]"),
        (b"10.0.0.1:80", "10.0.0.1"),
        (b"", ""),
        (b"Example.com.", "example.com"),
        (b"example.com.:8080", "example.com"),
        (b"example.com..", "example.com"),
    ],
)
def test_host_header_without_port(host, expected):
    request = parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")[0]
    assert request.host == expected


def test_http_10_may_omit_host():
    request = parse(b"GET / HTTP/1.0\r\n\r\n")[0]
    assert (request.host, request.http_version) == ("", "1.0")


def test_http_11_without_host_is_400():
    # RFC 9112 3.2: "A server MUST respond with a 400 ... that lacks a Host header field".
    assert refused(b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n").status == 400


def test_two_host_headers_are_400():
    # Otherwise routing could follow one Host and the upstream the other.
    assert refused(b"GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n").status == 400


def test_headers_keep_their_order_case_and_duplicates():
    request = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-Y: 1\r\nx-y: 2\r\nCOOKIE: c\r\n\r\n")[0]
    assert request.headers == [(b"Host", b"a"), (b"X-Y", b"1"), (b"x-y", b"2"), (b"COOKIE", b"c")]


# ------------------------------------------------------------------ limits and errors


def test_many_headers_past_the_limit_are_431():
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 50) for i in range(40))
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n"
    assert refused(data, max_head=1024).status == 431
    assert parse(data, max_head=len(data))[0].method == "GET"


def test_long_request_line_is_431():
    assert refused(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 4096).status == 431


def test_long_target_is_refused_before_it_ends():
    parser = RequestParser(1024)
    parser.feed(b"GET /")
    with pytest.raises(ProtocolError) as caught:
        for _ in range(10):
            parser.feed(b"a" * 512)
    assert caught.value.status == 431


def test_a_header_line_that_never_ends_is_refused_before_it_is_buffered():
    parser = RequestParser(1024)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
    fed = 0
    with pytest.raises(ProtocolError) as caught:
        while fed < 1_000_000:
            parser.feed(b"x" * 1000)
            fed += 1000
    assert caught.value.status == 431
    assert fed <= 2 * 1024  # memory held is bounded by the limit, not by what the client sends


def test_a_head_split_across_many_reads_under_the_limit_is_fine():
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: " + b"v" * 600 + b"\r\n\r\n"
    parser = RequestParser(1024)
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert [type(e) for e in events] == [Request, EndOfMessage]


def test_body_after_a_head_split_across_reads_does_not_count_as_head():
    parser = RequestParser(1024)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\n")
    events = parser.feed(b"Content-Length: 5000\r\n\r\n" + b"b" * 5000)
    assert body_of(events) == b"b" * 5000


def test_content_length_past_the_body_limit_is_413():
    error = refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", max_body=100)
    assert error.status == 413


def test_chunked_body_past_the_limit_is_413():
    parser = RequestParser(65536, 10)
    parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"
    )
    with pytest.raises(ProtocolError) as caught:
        parser.feed(b"8\r\n12345678\r\n")
    assert caught.value.status == 413


def test_body_at_the_limit_is_fine():
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", max_body=10
    )
    assert body_of(events) == b"0123456789"


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on a plain port
    ],
)
def test_malformed_requests_are_400(data):
    assert refused(data).status == 400


def test_errors_carry_a_reason():
    error = refused(b"GARBAGE\r\n\r\n")
    assert error.reason
    assert str(error) == error.reason


def test_an_upgrade_offer_is_ignored_and_parsing_goes_on():
    # RFC 9110 7.8: the request is answered as plain HTTP/1.1 (curl --http2 sends this).
    events = parse(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    paths = [e.path for e in events if isinstance(e, Request)]
    assert paths == ["/ws", "/next"]
    assert sum(isinstance(e, EndOfMessage) for e in events) == 2


def test_connect_raises_upgrade_requested():
    with pytest.raises(UpgradeRequested):
        parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")


def test_upgrade_header_without_connection_upgrade_is_a_normal_request():
    request = parse(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n")[0]
    assert request.method == "GET"


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_events_do_not_depend_on_how_reads_are_split(cuts):
    data = (
        b"GET /a?x=1 HTTP/1.1\r\nHost: a.com:81\r\nX-Long: " + b"v" * 40 + b"\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
        b"PUT /c HTTP/1.1\r\nHost: a.com\r\nContent-Length: 7\r\n\r\nseventh"
    )
    points = sorted({c for c in cuts if c < len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    parser = RequestParser(65536)
    events = [event for piece in pieces for event in parser.feed(piece)]
    requests = [e for e in events if type(e) is Request]
    assert [(r.method, r.path, r.host) for r in requests] == [
        ("GET", "/a", "a.com"),
        ("POST", "/b", "a.com"),
        ("PUT", "/c", "a.com"),
    ]
    assert requests[0].headers[1] == (b"X-Long", b"v" * 40)
    for stream_id, body in ((1, b""), (2, b"abc0123456789abcdef"), (3, b"seventh")):
        assert (
            b"".join(e.data for e in events if type(e) is Data and e.stream_id == stream_id) == body
        )
    assert [e.stream_id for e in events if type(e) is EndOfMessage] == [1, 2, 3]


# ------------------------------------------------------------------ responses


def feed_response(data: bytes, head: bool = False, stream_id: int = 7) -> list:
    parser = ResponseParser()
    parser.stream_id = stream_id
    parser.expect_no_body = head
    return parser.feed(data)


def test_response_with_content_length():
    events = feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
    assert events == [
        Response(7, 200, b"OK", [(b"Content-Length", b"5"), (b"X-A", b"b")], "1.1", True, 5),
        Data(7, b"hello"),
        EndOfMessage(7),
    ]


def test_chunked_response():
    events = feed_response(
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert events[0].status == 201
    assert events[0].reason == b"Created"
    assert events[0].content_length is None
    assert body_of(events) == b"abc"
    assert events[-1] == EndOfMessage(7)


def test_close_delimited_response_has_no_end_until_eof():
    events = feed_response(b"HTTP/1.1 200 OK\r\n\r\nsome bytes")
    assert events[0].content_length is None
    assert not events[0].keep_alive
    assert body_of(events) == b"some bytes"
    assert type(events[-1]) is Data


def test_http_10_response_is_not_keep_alive():
    events = feed_response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert events[0].http_version == "1.0"
    assert not events[0].keep_alive


def test_response_to_head_ends_at_the_head():
    parser = ResponseParser()
    parser.expect_no_body = True
    events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert [type(e) for e in events] == [Response, EndOfMessage]
    assert events[0].content_length == 1000  # the size a GET would have had
    assert not parser.expect_no_body
    # The connection is then reused for a GET: parsing starts afresh.
    events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert body_of(events) == b"ok"
    assert events[-1] == EndOfMessage(0)


def test_chunked_response_to_head_ends_at_the_head():
    events = feed_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", head=True)
    assert [type(e) for e in events] == [Response, EndOfMessage]


def test_interim_responses_are_events_of_their_own():
    # More in test_interim_heads.py.
    events = feed_response(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    )
    assert [type(e) for e in events] == [
        InterimResponse,
        InterimResponse,
        Response,
        Data,
        EndOfMessage,
    ]
    assert events[2].status == 200
    assert events[2].headers == [(b"Content-Length", b"2")]


def test_interim_response_before_a_head_response():
    events = feed_response(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head=True
    )
    assert [(type(e), getattr(e, "status", None)) for e in events] == [
        (InterimResponse, 100),
        (Response, 200),
        (EndOfMessage, None),
    ]


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status):
    parser = ResponseParser()
    events = parser.feed(b"HTTP/1.1 %d X\r\n\r\n" % status)
    assert [type(e) for e in events] == [Response, EndOfMessage]
    assert events[0].status == status
    # And the next response on the connection parses normally.
    assert body_of(parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")) == b"z"


def test_unsolicited_switching_protocols_is_502():
    # Upgrades are refused on the client side (501), so an upstream 101 answers nothing asked.
    with pytest.raises(ProtocolError) as caught:
        feed_response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert caught.value.status == 502


@pytest.mark.parametrize(
    "data",
    [
        b"HTTX/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\n",
        b"<html>hello</html>",
    ],
)
def test_malformed_responses_are_502(data):
    with pytest.raises(ProtocolError) as caught:
        feed_response(data)
    assert caught.value.status == 502
