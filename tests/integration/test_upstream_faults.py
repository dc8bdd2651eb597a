"""Upstreams that misbehave (tests/integration/upstreams/faulty.py) and what clients see."""

from __future__ import annotations

import time

import pytest
from conftest import (
    Gateway,
    Processes,
    Upstream,
    connection_closed,
    curl,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)

TRICKLE_BODY = b"trickled body " * 10


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, faulty: Upstream
) -> Gateway:
    config = make_config(
        upstreams=[
            {
                "name": "faulty",
                "endpoints": [{"address": faulty.address}],
                "timeouts": {"idle": "500ms"},
            }
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "faulty"}],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("faults"))


def test_reset_mid_body_cuts_the_client_off(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /reset-mid-body HTTP/1.1\r\nHost: f.test\r\n\r\n")
        try:
            response = read_response(stream)
            received = len(response.body)
            assert response.status == 200
            assert response.header("content-length") == "100000"
        except ConnectionResetError:
            received = 0
        # Short of the promised length, and the connection is gone: the client can tell
        # the body is incomplete, rather than take a truncated body as whole.
        assert received < 100000
        assert connection_closed(sock)


def test_curl_reports_the_truncated_body(gateway: Gateway) -> None:
    result = curl("-o", "/dev/null", gateway.url("/reset-mid-body"))
    assert result.returncode in (18, 56), result  # partial file / receive failure


def test_trickled_response_arrives_whole(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        for _ in range(2):  # and the connections stay in step for a second one
            sock.sendall(b"GET /trickle HTTP/1.1\r\nHost: f.test\r\n\r\n")
            response = read_response(stream)
            assert response.status == 200
            assert response.body == TRICKLE_BODY


def test_close_delimited_response_is_reframed(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /close-delimited HTTP/1.1\r\nHost: f.test\r\n\r\n")
        response = read_response(stream)
        assert response.status == 200
        assert response.body == b"c" * 5000
        # Re-framed as chunked, so the client connection outlives the upstream one.
        assert response.header("transfer-encoding") == "chunked"
        assert response.header("connection") != "close"
        sock.sendall(b"GET /close-delimited HTTP/1.1\r\nHost: f.test\r\n\r\n")
        assert read_response(stream).body == b"c" * 5000


def test_gateway_keeps_serving_after_faults(gateway: Gateway) -> None:
    for path in ("/reset-mid-body", "/malformed", "/close-delimited"):
        curl("-o", "/dev/null", gateway.url(path))
    result = curl(gateway.url("/anything"))
    assert result.returncode == 0
    assert result.stdout == b"ok from faulty\n"
    assert gateway.process.alive()
    assert "Traceback" not in gateway.stderr()


def test_pooled_connection_closed_by_the_upstream_is_not_reused(
    gateway: Gateway, faulty: Upstream
) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /close-soon HTTP/1.1\r\nHost: f.test\r\n\r\n")
        assert read_response(stream).body == b"closing soon\n"
        wait_until(
            lambda: gateway.endpoints("faulty")[faulty.address]["idle_connections"] == 0,
            timeout=3.0,
            what="the pool to forget the connection the upstream closed",
        )
        # A POST is never retried: it must not be sent on the dead connection.
        sock.sendall(b"POST /after HTTP/1.1\r\nHost: f.test\r\nContent-Length: 2\r\n\r\nhi")
        response = read_response(stream)
        assert (response.status, response.body) == (200, b"ok from faulty\n")


def test_upstream_silent_mid_body_is_cut_after_the_idle_timeout(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        started = time.monotonic()
        sock.sendall(b"GET /stall-mid-body HTTP/1.1\r\nHost: f.test\r\n\r\n")
        response = read_response(stream)  # returns at EOF with what came
        elapsed = time.monotonic() - started
        assert response.status == 200
        assert len(response.body) == 1000  # of 100000 promised
        assert connection_closed(sock)
    assert 0.4 <= elapsed < 3.0  # timeouts.idle is 500ms
