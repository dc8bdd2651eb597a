"""What an HTTP/1.1 client can make the gateway forward: request trailers, fields named by
Connection, HTTP versions and framing it must refuse. The upstream records every byte."""

from __future__ import annotations

import pytest
from conftest import make_config
from harness import RecordingUpstream, exchange


@pytest.fixture
def gateway(processes, tmp_path):
    with RecordingUpstream() as upstream:
        config = make_config(
            [{"name": "u", "endpoints": [{"address": upstream.address}]}],
            [
                {
                    "name": "all",
                    "match": {"path_prefix": "/"},
                    "upstream": "u",
                    "filters": [
                        {"type": "headers", "request_add": {"x-gateway-auth": "from-dispa"}}
                    ],
                }
            ],
        )
        yield processes.gateway(config, tmp_path), upstream


def _field_lines(head: bytes, name: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n")[1:] if line.lower().startswith(name + b":")]


def test_request_trailers_never_become_head_fields(gateway):
    gateway, upstream = gateway
    answer = exchange(
        gateway.port,
        b"POST /upload HTTP/1.1\r\nHost: public.test\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
        b"5\r\nhello\r\n0\r\nHost: internal\r\nX-Forwarded-For: 10.0.0.1\r\n"
        b"Authorization: Bearer forged\r\nX-Checksum: abc\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer
    sent = bytes(upstream.received[0])
    head, _, rest = sent.partition(b"\r\n\r\n")
    assert _field_lines(head, b"host") == [b"Host: public.test"]
    assert b"internal" not in sent and b"forged" not in sent and b"10.0.0.1" not in sent
    # What may be a trailer stays one: after the body, in the last chunk.
    assert rest == b"5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n"


def test_connection_cannot_remove_host_or_fields_the_gateway_sets(gateway):
    gateway, upstream = gateway
    answer = exchange(
        gateway.port,
        b"GET /x HTTP/1.1\r\nHost: public.test\r\nConnection: host, x-gateway-auth, x-drop\r\n"
        b"X-Drop: 1\r\nX-Gateway-Auth: client-forged\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer
    head = upstream.requests[0]
    assert _field_lines(head, b"host") == [b"Host: public.test"]
    assert _field_lines(head, b"x-gateway-auth") == [b"x-gateway-auth: from-dispa"]
    assert _field_lines(head, b"x-drop") == []
    assert b"client-forged" not in head


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"505"),
        # llhttp itself refuses a major version above 2 as malformed.
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", b"400"),
        (
            b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            b"400",
        ),
        (
            b"POST / HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"400",
        ),
    ],
)
def test_versions_and_framing_that_are_refused(gateway, request_bytes, status):
    gateway, upstream = gateway
    answer = exchange(gateway.port, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    assert upstream.connections == 0, upstream.received
