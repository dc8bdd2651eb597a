"""Response trailers stay trailers: nothing one exchange saw reaches another client."""

from __future__ import annotations

import socket

import pytest
from conftest import HOST, make_config
from harness import RecordingUpstream, read_until_closed

SECRET_TRAILER = b"set-cookie: session=VICTIM-SECRET\r\n"


def _chunked_with_trailer() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nfirst\r\n0\r\n" + SECRET_TRAILER + b"\r\n"
    )


def _plain() -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


def _get(port: int, path: str, extra: bytes = b"") -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n"
            + extra
            + b"\r\n"
        )
        return read_until_closed(sock, timeout=5, idle=2)


@pytest.fixture
def trailer_gateway(processes, tmp_path):
    def answer(head, body, connection, index):
        return _chunked_with_trailer() if b" /trailer " in head else _plain()

    with RecordingUpstream(answer) as upstream:
        config = make_config(
            [{"name": "u", "endpoints": [{"address": upstream.address}]}],
            [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "u"}],
        )
        yield processes.gateway(config, tmp_path), upstream


def test_trailers_of_one_response_never_become_headers_of_the_next(trailer_gateway):
    gateway, upstream = trailer_gateway
    # The victim's response ends with a trailer; the same upstream connection then
    # answers other clients. Several rounds, so the remembered-head tables fill too.
    for _ in range(4):
        victim = _get(gateway.port, "/trailer")
        assert victim.startswith(b"HTTP/1.1 200"), victim
        for _ in range(3):
            other = _get(gateway.port, "/other")
            assert other.startswith(b"HTTP/1.1 200"), other
            assert b"VICTIM-SECRET" not in other, other
    assert upstream.connections >= 1


def test_trailers_go_to_a_client_that_accepts_them_and_are_dropped_for_others(
    trailer_gateway,
):
    gateway, _ = trailer_gateway
    accepting = _get(gateway.port, "/trailer", b"TE: trailers\r\n")
    head, _, body = accepting.partition(b"\r\n\r\n")
    assert b"VICTIM-SECRET" not in head, accepting
    assert body.endswith(b"0\r\n" + SECRET_TRAILER + b"\r\n"), accepting
    refusing = _get(gateway.port, "/trailer")
    assert b"VICTIM-SECRET" not in refusing, refusing
    assert refusing.endswith(b"0\r\n\r\n"), refusing
