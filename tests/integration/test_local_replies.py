"""Replies the gateway makes itself, each with its status and counted by reason."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from conftest import (
    Gateway,
    Processes,
    Upstream,
    async_wait_until,
    connection_closed,
    curl,
    free_port,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)


@pytest.fixture(scope="module")
def flippable(module_processes: Processes) -> Upstream:
    """A demo upstream of this module alone, whose health the tests turn down and up."""
    return module_processes.demo_upstream("flippable")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes,
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: Upstream,
    faulty: Upstream,
    flippable: Upstream,
) -> Gateway:
    def single(name: str, upstream: Upstream | str, **settings) -> dict:
        address = upstream if isinstance(upstream, str) else upstream.address
        return {"name": name, "endpoints": [{"address": address}], **settings}

    fast_health = {
        "path": "/healthz",
        "interval": "200ms",
        "timeout": "500ms",
        "healthy_threshold": 1,
        "unhealthy_threshold": 1,
    }
    upstreams = [
        single("good", upstream_a),
        single("dead", f"127.0.0.1:{free_port()}"),  # nothing listens there
        single("resetting", upstream_a),
        single("timing-out", upstream_a, timeouts={"response": "300ms"}),
        single("faulty", faulty, timeouts={"response": "300ms"}),
        single("raw", faulty),
        single("down", flippable, health=fast_health),
        single("narrow", upstream_a, circuit={"max_requests": 1}),
    ]
    hosts = {
        "good.test": "good",
        "dead.test": "dead",
        "reset.test": "resetting",
        "slow.test": "timing-out",
        "faulty.test": "faulty",
        "raw.test": "raw",
        "down.test": "down",
        "circuit.test": "narrow",
    }
    config = make_config(
        upstreams=upstreams,
        # No route for any other host: those get 404.
        routes=[{"match": {"host": host}, "upstream": name} for host, name in hosts.items()],
        listeners=[
            {"name": "public"},
            {
                "name": "strict",
                "limits": {
                    "max_body_bytes": 1024,
                    "header_timeout": "500ms",
                    "body_timeout": "500ms",
                    "idle_timeout": "700ms",
                    "max_requests_per_connection": 3,
                },
            },
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("local-replies"))


def send(gateway: Gateway, data: bytes, listener: str = "public", close_within: float = 0.0):
    """Send raw bytes, read one response; with ``close_within``, also whether the gateway
    closed the connection within that many seconds (else None)."""
    with raw_connection(gateway.ports[listener]) as (sock, stream):
        sock.sendall(data)
        response = read_response(stream)
        closed = connection_closed(sock, timeout=close_within) if close_within else None
        return response, closed


class Counted:
    """Asserts that one block of a test made exactly ``count`` local replies of a reason."""

    def __init__(self, gateway: Gateway, reason: str, count: int = 1) -> None:
        self.gateway, self.reason, self.count = gateway, reason, count

    def __enter__(self) -> Counted:
        self.before = self.gateway.local_replies(self.reason)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            after = self.gateway.local_replies(self.reason)
            assert after - self.before == self.count, (self.reason, self.before, after)


def test_unknown_host_is_404_no_route(gateway: Gateway) -> None:
    with Counted(gateway, "no_route"):
        response, closed = send(
            gateway, b"GET / HTTP/1.1\r\nHost: nothing.test\r\n\r\n", close_within=0.3
        )
    assert response.status == 404
    assert response.body == b"no route\n"
    assert not closed  # a local reply keeps a healthy connection alive


def test_expect_continue_gets_no_interim_answer_before_a_local_reply(gateway: Gateway) -> None:
    response, closed = send(
        gateway,
        b"POST / HTTP/1.1\r\nHost: nothing.test\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n",
        close_within=2.0,
    )
    assert response.status == 404
    assert closed  # the unsent body would be read as the next request: close instead


def test_huge_header_is_431(gateway: Gateway) -> None:
    huge = b"X-Huge: " + b"a" * 100_000 + b"\r\n"
    with Counted(gateway, "header_too_large"):
        response, closed = send(
            gateway, b"GET / HTTP/1.1\r\nHost: good.test\r\n" + huge + b"\r\n", close_within=2.0
        )
    assert response.status == 431
    assert closed


def test_body_over_the_limit_with_content_length_is_413(gateway: Gateway) -> None:
    with Counted(gateway, "body_too_large"):
        # Refused from the head alone: the body is never sent.
        response, closed = send(
            gateway,
            b"POST /count HTTP/1.1\r\nHost: good.test\r\nContent-Length: 5000\r\n\r\n",
            listener="strict",
            close_within=2.0,
        )
    assert response.status == 413
    assert closed


def test_chunked_body_over_the_limit_is_413(gateway: Gateway) -> None:
    piece = b"320\r\n" + b"z" * 800 + b"\r\n"  # 800 bytes a chunk; the limit is 1024
    with Counted(gateway, "body_too_large"):
        response, closed = send(
            gateway,
            b"POST /count HTTP/1.1\r\nHost: good.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            + piece * 3
            + b"0\r\n\r\n",
            listener="strict",
            close_within=2.0,
        )
    assert response.status == 413
    assert closed


def test_body_within_the_limit_passes(gateway: Gateway) -> None:
    response, _ = send(
        gateway,
        b"POST /count HTTP/1.1\r\nHost: good.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3e8\r\n" + b"z" * 1000 + b"\r\n0\r\n\r\n",
        listener="strict",
    )
    assert response.status == 200
    assert b'"size": 1000' in response.body


@pytest.mark.parametrize(
    "data",
    [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: good.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: good.test\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: good.test\r\nBad Name: x\r\n\r\n",
        # Framing the gateway and the upstream could read differently (request smuggling).
        b"POST /count HTTP/1.1\r\nHost: good.test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /count HTTP/1.1\r\nHost: good.test\r\nContent-Length: 5\r\n"
        b"Content-Length: 6\r\n\r\nhello!",
        b"GET / HTTP/1.1\r\nHost: good.test\r\nHost: other.test\r\n\r\n",
    ],
    ids=[
        "garbage",
        "bad-request-line",
        "bad-content-length",
        "space-in-header-name",
        "content-length-and-chunked",
        "two-content-lengths",
        "two-hosts",
    ],
)
def test_malformed_request_is_400(gateway: Gateway, data: bytes) -> None:
    with Counted(gateway, "malformed_request"):
        response, closed = send(gateway, data, close_within=2.0)
    assert response.status == 400
    assert closed


def test_half_a_head_then_silence_is_408(gateway: Gateway) -> None:
    started = time.monotonic()
    with Counted(gateway, "client_timeout"):
        response, closed = send(
            gateway,
            b"GET / HTTP/1.1\r\nHost: good.test\r\nX-Half: ",
            listener="strict",
            close_within=2.0,
        )
    assert response.status == 408
    assert closed
    assert 0.4 <= time.monotonic() - started < 3.0  # header_timeout is 500ms


def test_half_a_body_then_silence_is_408(gateway: Gateway) -> None:
    with Counted(gateway, "client_timeout"):
        response, closed = send(
            gateway,
            b"POST /count HTTP/1.1\r\nHost: good.test\r\nContent-Length: 100\r\n\r\nonly ten..",
            listener="strict",
            close_within=2.0,
        )
    assert response.status == 408
    assert closed


def test_endpoint_with_nothing_listening_is_502(gateway: Gateway) -> None:
    with Counted(gateway, "upstream_connect_failure"):
        response, _ = send(gateway, b"GET / HTTP/1.1\r\nHost: dead.test\r\n\r\n")
    assert response.status == 502


def test_upstream_reset_is_502(gateway: Gateway) -> None:
    with Counted(gateway, "upstream_reset"):
        response, _ = send(gateway, b"GET /reset HTTP/1.1\r\nHost: reset.test\r\n\r\n")
    assert response.status == 502


def test_malformed_upstream_response_is_502(gateway: Gateway) -> None:
    with Counted(gateway, "upstream_protocol_error"):
        response, _ = send(gateway, b"GET /malformed HTTP/1.1\r\nHost: faulty.test\r\n\r\n")
    assert response.status == 502


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /slow?ms=3000 HTTP/1.1\r\nHost: slow.test",
        b"GET /silent HTTP/1.1\r\nHost: faulty.test",
    ],
    ids=["slow", "silent"],
)
def test_response_timeout_is_504(gateway: Gateway, request_line: bytes) -> None:
    started = time.monotonic()
    with Counted(gateway, "upstream_timeout"):
        response, _ = send(gateway, request_line + b"\r\n\r\n")
    assert response.status == 504
    assert time.monotonic() - started < 2.0  # timeouts.response is 300ms


def test_all_endpoints_unhealthy_is_503(gateway: Gateway, flippable: Upstream) -> None:
    request = b"GET / HTTP/1.1\r\nHost: down.test\r\n\r\n"
    assert send(gateway, request)[0].status == 200
    flippable.set_health(False)
    try:
        wait_until(
            lambda: not gateway.endpoints("down")[flippable.address]["healthy"],
            timeout=5.0,
            what="the health check to mark the endpoint down",
        )
        with Counted(gateway, "no_healthy_endpoint"):
            response, _ = send(gateway, request)
        assert response.status == 503
    finally:
        flippable.set_health(True)
    wait_until(
        lambda: gateway.endpoints("down")[flippable.address]["healthy"],
        timeout=5.0,
        what="the endpoint to come back",
    )
    assert send(gateway, request)[0].status == 200


async def test_open_circuit_is_503(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> tuple[int, str]:
            async with session.get(gateway.url(path), headers={"Host": "circuit.test"}) as r:
                return r.status, await r.text()

        slow = asyncio.create_task(get("/slow?ms=1500"))
        try:
            await async_wait_until(
                lambda: any(e["active_requests"] for e in gateway.endpoints("narrow").values()),
                timeout=5.0,
                what="the slow request to be in flight",
            )
            with Counted(gateway, "circuit_open"):
                status, body = await get("/")
            assert status == 503
            assert body == "circuit open\n"
            assert await slow == (200, "slow hello from alpha\n")
        finally:
            slow.cancel()
        # The circuit closes again once the slow request is done.
        assert await get("/") == (200, "hello from alpha\n")


def test_idle_keep_alive_connection_is_closed(gateway: Gateway) -> None:
    with raw_connection(gateway.ports["strict"]) as (sock, stream):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: good.test\r\n\r\n")
        assert read_response(stream).status == 200
        started = time.monotonic()
        assert connection_closed(sock, timeout=3.0)
        assert 0.3 <= time.monotonic() - started < 2.0  # idle_timeout is 700ms


def test_max_requests_per_connection(gateway: Gateway) -> None:
    with raw_connection(gateway.ports["strict"]) as (sock, stream):
        for number in (1, 2, 3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: good.test\r\n\r\n")
            response = read_response(stream)
            assert response.status == 200
            expected = "close" if number == 3 else None
            assert response.header("connection") == expected, number
        assert connection_closed(sock)


def test_h2c_upgrade_offer_is_ignored(gateway: Gateway) -> None:
    result = curl("--http2", "-H", "Host: good.test", gateway.url("/"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello from alpha\n"


def test_local_reply_mid_request_drops_the_upstream_side(
    gateway: Gateway, faulty: Upstream
) -> None:
    # The head went upstream, then the body broke a limit: the upstream connection
    # carries half a request and must be closed, and its late answer must go nowhere.
    open_before = faulty.stats()["open"]
    piece = b"320\r\n" + b"z" * 800 + b"\r\n"
    with raw_connection(gateway.ports["strict"]) as (sock, stream):
        sock.sendall(
            b"POST /answer-later HTTP/1.1\r\nHost: raw.test\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + piece
        )
        time.sleep(0.1)  # the head and first chunk are on their way upstream
        sock.sendall(piece * 2)
        assert read_response(stream).status == 413
        assert connection_closed(sock)
    time.sleep(0.5)  # the upstream has answered by now (after 300 ms)
    wait_until(
        lambda: faulty.stats()["open"] <= open_before,
        timeout=3.0,
        what="the gateway to close its half-used upstream connection",
    )
    assert "Traceback" not in gateway.stderr()
    assert send(gateway, b"GET / HTTP/1.1\r\nHost: raw.test\r\n\r\n")[0].status == 200


def test_body_timeout_drops_the_upstream_side(gateway: Gateway, faulty: Upstream) -> None:
    open_before = faulty.stats()["open"]
    with Counted(gateway, "client_timeout"):
        response, closed = send(
            gateway,
            b"POST /count HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 100\r\n\r\n0123",
            listener="strict",
            close_within=2.0,
        )
    assert (response.status, closed) == (408, True)
    # The upstream waits for 96 more bytes that will never come: the gateway must let go.
    wait_until(
        lambda: faulty.stats()["open"] <= open_before,
        timeout=3.0,
        what="the gateway to close its half-used upstream connection",
    )
