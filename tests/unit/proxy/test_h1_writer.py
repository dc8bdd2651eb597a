"""Message heads Dispa writes: hop-by-hop headers dropped, forwarding headers added, framing
right; everything written is parsed back with httptools to prove it is valid HTTP/1.1."""

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy.http1.parser import RequestParser, ResponseParser
from dispa.proxy.http1.writer import (
    HOP_BY_HOP,
    LAST_CHUNK,
    chunk,
    request_head,
    response_head,
    without_connection_tokens,
)


def arrived_request(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The header list of a request with these fields, as the gateway's parser hands it
    on (fields a Connection header names are removed on receipt, not by the writer)."""
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    if not any(name.lower() == b"host" for name, _ in headers):
        lines += b"Host: a\r\n"
    request = RequestParser(65536).feed(b"GET / HTTP/1.1\r\n" + lines + b"\r\n")[0]
    return list(request.headers)


def arrived_response(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The header list of a response with these fields, as the response parser hands it on."""
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    data = b"HTTP/1.1 200 OK\r\n" + lines + b"content-length: 0\r\n\r\n"
    response = ResponseParser().feed(data)[0]
    return [(n, v) for n, v in response.headers if n != b"content-length"]


class Collector:
    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.complete = False
        self.head_done = False
        self.parser = None
        self.keep_alive = None  # read at the head: llhttp resets it once the message ends

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]

    def names(self) -> list[bytes]:
        return [n.lower() for n, _ in self.headers]


def parse_request(data: bytes) -> tuple[Collector, httptools.HttpRequestParser]:
    collector = Collector()
    parser = collector.parser = httptools.HttpRequestParser(collector)
    parser.feed_data(data)
    assert collector.head_done
    return collector, parser


def parse_response(data: bytes) -> tuple[Collector, httptools.HttpResponseParser]:
    collector = Collector()
    parser = collector.parser = httptools.HttpResponseParser(collector)
    parser.feed_data(data)
    assert collector.head_done
    return collector, parser


def forward(headers, **overrides) -> bytes:
    arguments = {
        "client_ip": "10.0.0.9",
        "scheme": "http",
        "host": b"example.com",
        "request_id": b"req-1",
        "content_length": None,
        "chunked": False,
    }
    arguments.update(overrides)
    method = arguments.pop("method", "GET")
    target = arguments.pop("target", b"/path?q=1")
    return request_head(method, target, headers, **arguments)


# ------------------------------------------------------------------ forwarded requests


def test_request_line_and_plain_headers_pass_through():
    data = forward([(b"Host", b"example.com"), (b"Accept", b"*/*"), (b"X-Custom", b"a, b")])
    assert data.startswith(b"GET /path?q=1 HTTP/1.1\r\n")
    assert data.endswith(b"\r\n\r\n")
    request, parser = parse_request(data)
    assert parser.get_method() == b"GET"
    assert request.url == b"/path?q=1"
    assert request.values(b"host") == [b"example.com"]
    assert request.values(b"accept") == [b"*/*"]
    assert request.values(b"x-custom") == [b"a, b"]
    assert request.keep_alive
    assert request.complete


def test_hop_by_hop_headers_are_dropped():
    headers = [
        (b"Host", b"a"),
        (b"Connection", b"keep-alive"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-Checksum"),
        (b"Upgrade", b"h2c"),
        (b"X-Kept", b"1"),
    ]
    request, _ = parse_request(forward(headers))
    for name in HOP_BY_HOP:
        assert name not in request.names(), name
    assert request.values(b"x-kept") == [b"1"]


def test_headers_named_by_connection_are_dropped():
    headers = [
        (b"Host", b"a"),
        (b"Connection", b"X-Secret , close"),
        (b"connection", b"x-other"),
        (b"x-secret", b"1"),
        (b"X-Other", b"2"),
        (b"X-Kept", b"3"),
    ]
    request, _ = parse_request(forward(arrived_request(headers)))
    assert b"x-secret" not in request.names()
    assert b"x-other" not in request.names()
    assert request.values(b"x-kept") == [b"3"]
    assert request.keep_alive  # the client's "close" is not the upstream's


def test_host_and_fields_added_after_receipt_are_never_hop_by_hop():
    # "Connection: host, x-gateway-auth" once made the gateway drop Host and the field its
    # own headers filter added under that name.
    headers = arrived_request(
        [(b"Host", b"a"), (b"Connection", b"host, x-gateway-auth"), (b"X-Gateway-Auth", b"c")]
    )
    assert [n.lower() for n, _ in headers].count(b"host") == 1
    assert b"x-gateway-auth" not in [n.lower() for n, _ in headers]
    added = [*headers, (b"x-gateway-auth", b"set-by-dispa")]
    request, _ = parse_request(forward(added))
    assert request.values(b"host") == [b"a"]
    assert request.values(b"x-gateway-auth") == [b"set-by-dispa"]
    response_fields = arrived_response([(b"Connection", b"x-served-by"), (b"X-Served-By", b"u")])
    response, _ = parse_response(
        respond([*response_fields, (b"x-served-by", b"dispa")], content_length=0)
    )
    assert response.values(b"x-served-by") == [b"dispa"]


def test_x_forwarded_for_is_appended():
    request, _ = parse_request(forward([(b"Host", b"a")]))
    assert request.values(b"x-forwarded-for") == [b"10.0.0.9"]
    headers = [(b"Host", b"a"), (b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")]
    request, _ = parse_request(forward(headers))
    assert request.values(b"x-forwarded-for") == [b"1.1.1.1, 2.2.2.2, 10.0.0.9"]


def test_forwarded_proto_and_host_are_set_not_copied():
    headers = [
        (b"Host", b"a"),
        (b"X-Forwarded-Proto", b"gopher"),
        (b"X-Forwarded-Host", b"evil.example"),
    ]
    request, _ = parse_request(forward(headers, scheme="https", host=b"shop.example:8443"))
    assert request.values(b"x-forwarded-proto") == [b"https"]
    assert request.values(b"x-forwarded-host") == [b"shop.example:8443"]


def test_no_forwarded_host_without_a_host():
    request, _ = parse_request(forward([(b"X-Forwarded-Host", b"evil")], host=None))
    assert request.values(b"x-forwarded-host") == []


def test_via_is_appended():
    request, _ = parse_request(forward([(b"Host", b"a")]))
    assert request.values(b"via") == [b"1.1 dispa"]
    request, _ = parse_request(forward([(b"Via", b"1.0 fred"), (b"via", b"1.1 p.example")]))
    assert request.values(b"via") == [b"1.0 fred, 1.1 p.example, 1.1 dispa"]


def test_request_id_is_kept_or_added():
    request, _ = parse_request(forward([(b"X-Request-Id", b"from-client")], request_id=b"new"))
    assert request.values(b"x-request-id") == [b"from-client"]
    request, _ = parse_request(forward([(b"Host", b"a")], request_id=b"abc-123"))
    assert request.values(b"x-request-id") == [b"abc-123"]


def test_content_length_framing_replaces_the_clients():
    data = forward([(b"Content-Length", b"999")], method="POST", content_length=5) + b"hello"
    request, _ = parse_request(data)
    assert request.values(b"content-length") == [b"5"]
    assert request.body == b"hello"
    assert request.complete


def test_chunked_framing():
    data = (
        forward([(b"Transfer-Encoding", b"gzip, chunked")], method="POST", chunked=True)
        + chunk(b"hello ")
        + chunk(b"world")
        + LAST_CHUNK
    )
    request, _ = parse_request(data)
    assert request.values(b"transfer-encoding") == [b"chunked"]
    assert request.values(b"content-length") == []
    assert request.body == b"hello world"
    assert request.complete


def test_content_length_wins_over_chunked():
    request, _ = parse_request(forward([], method="POST", content_length=0, chunked=True))
    assert request.values(b"content-length") == [b"0"]
    assert request.values(b"transfer-encoding") == []


def test_no_body_no_framing_headers():
    request, _ = parse_request(forward([(b"Host", b"a")]))
    assert request.values(b"content-length") == []
    assert request.values(b"transfer-encoding") == []
    assert request.complete


def test_absolute_form_target_is_written_as_given():
    request, _ = parse_request(forward([(b"Host", b"a")], target=b"http://a/x?y"))
    assert request.url == b"http://a/x?y"


# ------------------------------------------------------------------ responses to clients


def respond(headers, **overrides) -> bytes:
    arguments = {"content_length": None, "chunked": False, "keep_alive": True}
    arguments.update(overrides)
    status = arguments.pop("status", 200)
    reason = arguments.pop("reason", b"OK")
    return response_head(status, reason, headers, **arguments)


def test_status_line_and_content_length():
    data = respond([(b"Content-Type", b"text/plain"), (b"Content-Length", b"77")], content_length=2)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    response, parser = parse_response(data + b"hi")
    assert parser.get_status_code() == 200
    assert response.values(b"content-length") == [b"2"]
    assert response.values(b"content-type") == [b"text/plain"]
    assert response.body == b"hi"
    assert response.complete
    assert response.keep_alive


def test_chunked_response_framing():
    data = respond([(b"Transfer-Encoding", b"chunked")], chunked=True)
    data += chunk(b"a" * 300) + chunk(b"b") + LAST_CHUNK
    response, _ = parse_response(data)
    assert response.values(b"transfer-encoding") == [b"chunked"]
    assert response.body == b"a" * 300 + b"b"
    assert response.complete


def test_connection_close_when_not_keeping_alive():
    data = respond([(b"Connection", b"keep-alive")], content_length=0, keep_alive=False)
    response, _ = parse_response(data)
    assert response.values(b"connection") == [b"close"]
    assert not response.keep_alive


def test_response_hop_by_hop_and_connection_tokens_are_dropped():
    headers = [
        (b"Connection", b"X-Internal"),
        (b"X-Internal", b"secret"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"Upgrade", b"h2c"),
        (b"Trailer", b"X-Sum"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    response, _ = parse_response(respond(arrived_response(headers), content_length=0))
    names = response.names()
    for name in (b"connection", b"x-internal", b"keep-alive", b"proxy-authenticate", b"upgrade"):
        assert name not in names
    assert b"trailer" not in names
    assert response.values(b"set-cookie") == [b"a=1", b"b=2"]


def test_a_field_named_by_connection_close_is_dropped_both_ways():
    # "close" is a token like any other here (RFC 9110 7.6.1), as in HTTP/2 response blocks.
    headers = [(b"Connection", b"close"), (b"Close", b"listed"), (b"Server", b"s")]
    response, _ = parse_response(respond(arrived_response(headers), content_length=0))
    request, _ = parse_request(forward(arrived_request(headers)))
    for message in (response, request):
        assert b"close" not in message.names()
        assert message.values(b"server") == [b"s"]


def test_proxied_response_gains_via():
    response, _ = parse_response(respond([(b"Via", b"1.1 upstream-cache")], content_length=0))
    assert response.values(b"via") == [b"1.1 upstream-cache, 1.1 dispa"]
    response, _ = parse_response(respond([], content_length=0))
    assert response.values(b"via") == [b"1.1 dispa"]


def test_local_reply_has_no_via():
    data = respond(
        [(b"content-type", b"text/plain")],
        status=404,
        reason=b"Not Found",
        content_length=9,
        proxied=False,
    )
    response, parser = parse_response(data + b"no route\n")
    assert parser.get_status_code() == 404
    assert response.values(b"via") == []
    assert response.body == b"no route\n"


def test_no_body_response_keeps_its_content_length():
    # A HEAD answer announces the length a GET would get; the writer only writes the head.
    data = respond([], content_length=1234)
    assert b"content-length: 1234\r\n" in data


def test_chunk():
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_empty_chunk_is_nothing_not_the_last_chunk():
    assert chunk(b"") == b""
    data = respond([], chunked=True) + chunk(b"a") + chunk(b"") + chunk(b"b") + LAST_CHUNK
    response, _ = parse_response(data)
    assert response.body == b"ab"


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda name: name.strip("-")
)
field_value = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=20
)
header_lists = st.lists(
    st.tuples(
        st.one_of(token, st.sampled_from(sorted(n.decode() for n in HOP_BY_HOP))), field_value
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(headers=header_lists, body=st.binary(max_size=300), chunked=st.booleans())
def test_any_forwarded_request_parses_back(headers, body, chunked):
    raw = [(n.encode(), v.encode()) for n, v in headers]
    # As the parser hands them on: what a Connection header names removed, Host kept.
    raw = without_connection_tokens(raw, keep=frozenset({b"host"}))
    if chunked:
        data = forward(raw, method="POST", chunked=True) + chunk(body) + LAST_CHUNK
    else:
        data = forward(raw, method="POST", content_length=len(body)) + body
    request, _ = parse_request(data)
    assert request.complete
    assert request.body == body
    tokens = {
        t.strip().lower() for n, v in raw if n.lower() == b"connection" for t in v.split(b",")
    }
    for name in request.names():
        assert name not in HOP_BY_HOP or name == b"transfer-encoding"
        assert name not in tokens or name in (
            b"x-forwarded-for",
            b"x-forwarded-proto",
            b"via",
            b"x-forwarded-host",
            b"x-request-id",
            b"content-length",
            b"transfer-encoding",
        )


@settings(max_examples=200, deadline=None)
@given(
    headers=header_lists,
    status=st.integers(min_value=200, max_value=599).filter(lambda s: s not in (204, 304)),
    body=st.binary(max_size=300),
    chunked=st.booleans(),
    keep_alive=st.booleans(),
)
def test_any_response_parses_back(headers, status, body, chunked, keep_alive):
    raw = [(n.encode(), v.encode()) for n, v in headers]
    if chunked:
        data = respond(raw, status=status, chunked=True, keep_alive=keep_alive)
        data += chunk(body) + LAST_CHUNK
    else:
        data = respond(raw, status=status, content_length=len(body), keep_alive=keep_alive) + body
    response, parser = parse_response(data)
    assert parser.get_status_code() == status
    assert response.complete
    assert response.body == body
    assert response.keep_alive == keep_alive


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "OPTIONS", "PATCH"])
def test_methods_are_written_as_given(method):
    _, parser = parse_request(forward([(b"Host", b"a")], method=method))
    assert parser.get_method() == method.encode()
