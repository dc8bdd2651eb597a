"""What the gateway adds to and removes from the messages it forwards."""

from __future__ import annotations

import re

import aiohttp
import pytest
from conftest import (
    Gateway,
    Processes,
    Upstream,
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
            {"name": "demo", "endpoints": [{"address": upstream_a.address}]},
            {"name": "raw", "endpoints": [{"address": faulty.address}]},
        ],
        routes=[
            {"match": {"path_exact": "/hop"}, "upstream": "raw"},
            {"match": {"path_exact": "/local"}, "direct_response": {"body": "local\n"}},
            {"match": {"path_prefix": "/"}, "upstream": "demo"},
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("forwarded"))


def exchange(gateway: Gateway, head: str):
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(head.encode())
        return read_response(stream)


def upstream_saw(gateway: Gateway, *header_lines: str, host: str = "fwd.test") -> dict:
    lines = "".join(f"{line}\r\n" for line in header_lines)
    response = exchange(gateway, f"GET /headers HTTP/1.1\r\nHost: {host}\r\n{lines}\r\n")
    assert response.status == 200
    return received_headers(response.body)


def test_hop_by_hop_request_headers_do_not_reach_the_upstream(gateway: Gateway) -> None:
    seen = upstream_saw(
        gateway,
        "Connection: keep-alive, X-Secret",
        "X-Secret: 1",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Trailer: X-Checksum",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "Proxy-Connection: keep-alive",
        "X-Kept: yes",
    )
    for name in (
        "x-secret",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    ):
        assert name not in seen, f"{name} reached the upstream"
    # The upstream may see its own Connection header, never the client's tokens.
    assert "x-secret" not in seen.get("connection", "").lower()
    assert seen["x-kept"] == "yes"


def test_hop_by_hop_response_headers_do_not_reach_the_client(gateway: Gateway) -> None:
    response = exchange(gateway, "GET /hop HTTP/1.1\r\nHost: fwd.test\r\n\r\n")
    assert response.status == 200
    assert response.body == b"hop\n"
    names = {name for name, _ in response.headers}
    assert "x-up-secret" not in names
    assert "keep-alive" not in names
    assert "proxy-authenticate" not in names
    assert "x-up-secret" not in (response.header("connection") or "")
    assert response.header("x-up-kept") == "1"


def test_x_forwarded_for_is_set_and_appended(gateway: Gateway) -> None:
    assert upstream_saw(gateway)["x-forwarded-for"] == "127.0.0.1"
    seen = upstream_saw(gateway, "X-Forwarded-For: 203.0.113.7")
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    seen = upstream_saw(gateway, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 10.0.0.1")
    assert seen["x-forwarded-for"] == "203.0.113.7, 10.0.0.1, 127.0.0.1"


def test_x_forwarded_proto_and_host_are_the_gateways_own(gateway: Gateway) -> None:
    seen = upstream_saw(
        gateway,
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: spoofed.test",
        host="Shop.Example:8443",
    )
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "Shop.Example:8443"
    assert seen["host"] == "Shop.Example:8443"  # Host itself is passed through


def test_via_is_appended_both_ways(gateway: Gateway) -> None:
    assert upstream_saw(gateway)["via"] == "1.1 dispa"
    assert upstream_saw(gateway, "Via: 1.0 fred")["via"] == "1.0 fred, 1.1 dispa"
    response = exchange(gateway, "GET / HTTP/1.1\r\nHost: fwd.test\r\n\r\n")
    assert response.header("via") == "1.1 dispa"


async def test_request_id_is_generated_or_kept(gateway: Gateway) -> None:
    generated = set()
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(gateway.url("/headers")) as response:
                seen = received_headers(await response.json())
                request_id = seen["x-request-id"]
                assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", request_id), request_id
                # Echoed to the client, so a caller can quote it (see observe/access_log.py).
                assert response.headers.get("x-request-id") == request_id
                generated.add(request_id)
        assert len(generated) == 3
        async with session.get(
            gateway.url("/headers"), headers={"X-Request-Id": "client-chose-this"}
        ) as response:
            seen = received_headers(await response.json())
            assert seen["x-request-id"] == "client-chose-this"
            assert response.headers.get("x-request-id") == "client-chose-this"


def test_request_id_is_on_local_replies_too(gateway: Gateway) -> None:
    response = exchange(
        gateway, "GET /local HTTP/1.1\r\nHost: fwd.test\r\nX-Request-Id: mine\r\n\r\n"
    )
    assert (response.status, response.body) == (200, b"local\n")
    assert response.header("x-request-id") == "mine"
