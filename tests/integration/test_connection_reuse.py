"""Keep-alive on both sides of the gateway, and pipelined requests answered in order."""

from __future__ import annotations

import json

import aiohttp
import pytest
from conftest import (
    Gateway,
    Processes,
    Upstream,
    connection_closed,
    make_config,
    raw_connection,
    read_response,
    received_headers,
)


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes,
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: Upstream,
    faulty: Upstream,
) -> Gateway:
    config = make_config(
        upstreams=[
            {"name": "counted", "endpoints": [{"address": faulty.address}]},
            {"name": "demo", "endpoints": [{"address": upstream_a.address}]},
        ],
        routes=[
            {"match": {"path_prefix": "/counted/"}, "upstream": "counted"},
            {"match": {"path_prefix": "/"}, "upstream": "demo"},
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("reuse"))


def test_keep_alive_reuses_one_connection_on_each_side(gateway: Gateway, faulty: Upstream) -> None:
    accepted = gateway.metric("dispa_connections_accepted_total")
    upstream_before = faulty.stats()
    with raw_connection(gateway.port) as (sock, stream):
        for number in range(50):
            sock.sendall(f"GET /counted/{number} HTTP/1.1\r\nHost: reuse.test\r\n\r\n".encode())
            response = read_response(stream)
            assert response.status == 200
            assert response.body == b"ok from faulty\n"
            assert response.header("connection") != "close"
        # Still open after 50 requests, and the gateway saw one client connection.
        assert not connection_closed(sock, timeout=0.2)
        assert gateway.metric("dispa_connections_accepted_total") == accepted + 1
    upstream_after = faulty.stats()
    assert upstream_after["requests"] - upstream_before["requests"] == 51  # 50 + one /stats
    # One upstream connection carried all 50 (the /stats call above is a connection too).
    assert upstream_after["connections"] - upstream_before["connections"] <= 2
    assert gateway.endpoints("counted")[faulty.address]["idle_connections"] == 1


async def test_aiohttp_keep_alive_client_uses_one_connection(
    gateway: Gateway, upstream_a: Upstream
) -> None:
    accepted = gateway.metric("dispa_connections_accepted_total")
    served_before = upstream_a.stats()["requests"]
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(100):
            async with session.get(gateway.url("/")) as response:
                assert response.status == 200
                assert await response.text() == "hello from alpha\n"
    assert gateway.metric("dispa_connections_accepted_total") == accepted + 1
    assert upstream_a.stats()["requests"] - served_before == 101
    # Sequential requests need only one pooled upstream connection.
    assert gateway.endpoints("demo")[upstream_a.address]["idle_connections"] == 1


def test_pipelined_requests_are_answered_in_order(gateway: Gateway) -> None:
    requests = [
        b"GET /slow?ms=300 HTTP/1.1\r\nHost: p.test\r\n\r\n",
        b"GET /status/201 HTTP/1.1\r\nHost: p.test\r\n\r\n",
        b"POST /count HTTP/1.1\r\nHost: p.test\r\nContent-Length: 5\r\n\r\nhello",
        b"HEAD / HTTP/1.1\r\nHost: p.test\r\n\r\n",
        b"GET /status/204 HTTP/1.1\r\nHost: p.test\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: p.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    ]
    requests += [
        f"GET /headers HTTP/1.1\r\nHost: p.test\r\nX-Request-Id: pipe-{n}\r\n\r\n".encode()
        for n in range(10)
    ]
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"".join(requests))  # all of them in one send
        slow = read_response(stream)
        assert (slow.status, slow.body) == (200, b"slow hello from alpha\n")
        assert read_response(stream).status == 201
        counted = read_response(stream)
        assert counted.status == 200 and json.loads(counted.body)["size"] == 5
        head = read_response(stream, head_request=True)
        assert head.status == 200 and head.body == b""
        assert read_response(stream).status == 204
        echoed = read_response(stream)
        assert (echoed.status, echoed.body) == (200, b"abcdefg")
        for n in range(10):
            response = read_response(stream)
            assert response.status == 200
            assert received_headers(response.body)["x-request-id"] == f"pipe-{n}"
        # Nothing extra after the last answer, and the connection stays usable.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n")
        last = read_response(stream)
        assert (last.status, last.body) == (200, b"hello from alpha\n")
        assert last.header("connection") == "close"
        assert connection_closed(sock)


def test_http_1_0_client_gets_a_close_delimited_exchange(gateway: Gateway) -> None:
    # An HTTP/1.0 client knows no chunked coding: the body must come raw, ended by close.
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /bytes/1000 HTTP/1.0\r\nHost: old.test\r\n\r\n")
        raw = stream.read()  # until the gateway closes
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"x" * 1000
