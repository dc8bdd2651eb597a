"""Opening an HTTP/2 connection to an upstream: an endpoint that accepts but never sends
its SETTINGS fails with ``H2HandshakeTimeout`` once ``timeout`` has passed since the
connection was up; one that closes instead is a plain connect failure. Real sockets on
127.0.0.1, no mocks."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from dispa.proxy.http2.handshake import H2HandshakeTimeout
from dispa.proxy.http2.upstream_pool import H2EndpointPool


async def _server(handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the gateway goes; never a byte back
    writer.close()


async def test_silent_endpoint_times_out_with_its_own_error(caplog) -> None:
    server, port = await _server(_silent)
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    try:
        started = time.monotonic()
        with (
            caplog.at_level(logging.WARNING, logger="dispa.upstream"),
            pytest.raises(H2HandshakeTimeout),
        ):
            await pool.connect(timeout=0.3)
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 2.0
        assert isinstance(H2HandshakeTimeout("x"), TimeoutError)
        assert f"endpoint 127.0.0.1:{port} accepted the connection but sent no HTTP/2 SETTINGS" in (
            caplog.text
        )
        assert pool.connections == []  # never handed out, nor kept
        await asyncio.sleep(0.05)
        assert pool.open_connections == 0  # and closed
    finally:
        server.close()
        await server.wait_closed()


async def test_every_waiter_of_the_silent_connect_gets_the_same_error() -> None:
    server, port = await _server(_silent)
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    try:
        results = await asyncio.gather(
            *(pool.connect(timeout=0.3) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(result, H2HandshakeTimeout) for result in results), results
    finally:
        server.close()
        await server.wait_closed()


async def test_endpoint_that_closes_before_settings_is_a_plain_connect_failure() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server, port = await _server(hang_up)
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    try:
        with pytest.raises(ConnectionError) as info:
            await pool.connect(timeout=2.0)
        assert not isinstance(info.value, H2HandshakeTimeout)
    finally:
        server.close()
        await server.wait_closed()


def _http1_server(*, then_close: bool):
    """An HTTP/1.1 server: the h2c preface is a bad request line to it (nginx, aiohttp,
    Node answer 400 and close; some keep the connection)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(24)
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        if not then_close:
            await reader.read()
        writer.close()

    return answer


async def test_http1_server_that_answers_400_and_closes_is_a_plain_connect_failure() -> None:
    server, port = await _server(_http1_server(then_close=True))
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionError) as info:
            await pool.connect(timeout=2.0)
        assert not isinstance(info.value, H2HandshakeTimeout)
        assert time.monotonic() - started < 1.5  # its closing ends it, not the timeout
    finally:
        server.close()
        await server.wait_closed()


async def test_http1_server_that_answers_and_keeps_the_connection_times_out() -> None:
    # Its bytes are no SETTINGS frame (h2 waits for the 4.7 MB "frame" they announce):
    # no SETTINGS came, and that is what the reason says.
    server, port = await _server(_http1_server(then_close=False))
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    try:
        with pytest.raises(H2HandshakeTimeout):
            await pool.connect(timeout=0.3)
    finally:
        server.close()
        await server.wait_closed()
