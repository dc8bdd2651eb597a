"""Header blocks for HTTP/2 upstreams: the forwarded request, the response, trailers."""

from __future__ import annotations

import pytest

from dispa.proxy.http2.upstream_headers import (
    MalformedResponse,
    accepts_trailers,
    request_block,
    response_from_block,
    trailer_fields,
    trailer_section,
)


def forwarded(headers, **overrides):
    options = {
        "authority": b"api.test:8080",
        "scheme": "http",
        "client_ip": "10.0.0.9",
        "host": b"api.test:8080",
        "request_id": b"rid-1",
        "content_length": None,
    }
    options.update(overrides)
    return request_block("POST", b"/svc/Method?x=1", headers, **options)


def test_pseudo_headers_come_first_and_host_becomes_authority():
    block = forwarded([(b"Host", b"api.test:8080"), (b"Content-Type", b"application/grpc")])
    assert block[:4] == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"api.test:8080"),
        (b":path", b"/svc/Method?x=1"),
    ]
    names = [name for name, _ in block]
    assert b"host" not in names and b"Host" not in names
    assert (b"content-type", b"application/grpc") in block  # names lower-cased


def test_hop_by_hop_fields_are_dropped_but_te_trailers_is_kept():
    block = forwarded(
        [
            (b"Connection", b"keep-alive"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Upgrade", b"h2c"),
            (b"TE", b"trailers, deflate"),
            (b"X-Kept", b"1"),
        ]
    )
    fields = dict(block)
    # (Fields a Connection header names are removed when the request arrives: h1_parser.)
    for name in (b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"):
        assert name not in fields
    assert fields[b"te"] == b"trailers"
    assert fields[b"x-kept"] == b"1"


def test_te_without_trailers_is_dropped():
    assert b"te" not in dict(forwarded([(b"TE", b"gzip")]))


def test_forwarding_fields_extend_what_the_client_sent():
    block = forwarded([(b"X-Forwarded-For", b"1.2.3.4"), (b"Via", b"1.1 edge")])
    fields = dict(block)
    assert fields[b"x-forwarded-for"] == b"1.2.3.4, 10.0.0.9"
    assert fields[b"via"] == b"1.1 edge, 1.1 dispa"
    assert fields[b"x-forwarded-proto"] == b"http"
    assert fields[b"x-forwarded-host"] == b"api.test:8080"
    assert fields[b"x-request-id"] == b"rid-1"


def test_the_clients_request_id_and_body_length_are_kept():
    block = forwarded([(b"X-Request-Id", b"mine"), (b"Content-Length", b"99")], content_length=7)
    assert [v for n, v in block if n == b"x-request-id"] == [b"mine"]
    assert [v for n, v in block if n == b"content-length"] == [b"7"]


def test_cookies_pass_as_sent():
    block = forwarded([(b"Cookie", b"a=1; b=2")])
    assert dict(block)[b"cookie"] == b"a=1; b=2"


def test_a_response_block_becomes_the_response_event():
    response = response_from_block(
        3, [(b":status", b"404"), (b"content-length", b"12"), (b"grpc-status", b"5")]
    )
    assert (response.stream_id, response.status, response.reason) == (3, 404, b"Not Found")
    assert response.content_length == 12
    assert response.headers == [(b"content-length", b"12"), (b"grpc-status", b"5")]
    assert (response.http_version, response.keep_alive) == ("2", True)


@pytest.mark.parametrize(
    "block",
    [
        [(b"x", b"y")],
        [(b":status", b"2000")],
        [(b":status", b"ok!")],
        [(b":status", b"200"), (b"content-length", b"many")],
    ],
)
def test_malformed_response_blocks_are_refused(block):
    with pytest.raises(MalformedResponse):
        response_from_block(1, block)


def test_trailer_fields_drop_pseudo_hop_by_hop_and_framing_fields():
    fields = trailer_fields(
        [
            (b"Grpc-Status", b"0"),
            (b":status", b"200"),
            (b"connection", b"close"),
            (b"content-length", b"3"),
            (b"grpc-message", b"ok"),
        ]
    )
    assert fields == [(b"grpc-status", b"0"), (b"grpc-message", b"ok")]


def test_trailer_section_is_the_last_chunk_with_fields():
    section = trailer_section([(b"grpc-status", b"0"), (b"grpc-message", b"ok")])
    assert section == b"0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n"
    assert trailer_section([]) == b"0\r\n\r\n"


def test_http1_clients_get_trailers_only_when_they_ask():
    assert accepts_trailers([(b"TE", b"trailers")])
    assert accepts_trailers([(b"te", b"deflate, Trailers")])
    assert not accepts_trailers([(b"te", b"gzip")])
    assert not accepts_trailers([])


def test_scheme_is_the_upstream_connections_and_the_clients_is_forwarded():
    fields = dict(forwarded([], scheme="https"))
    assert fields[b":scheme"] == b"http"  # h2c to the upstream
    assert fields[b"x-forwarded-proto"] == b"https"
