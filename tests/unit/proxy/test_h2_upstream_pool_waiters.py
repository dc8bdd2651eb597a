"""A request waiting in ``H2EndpointPool.connect`` takes a stream that frees up on an open
connection, instead of waiting for a slow new connection (seen with nghttpd under load:
the new connection's SETTINGS came late and waiters timed out with room elsewhere)."""

from __future__ import annotations

import asyncio

from dispa.proxy.http2.upstream_pool import H2EndpointPool


class FullConnection:
    """Stands for an open connection at its stream limit; ``release`` frees one slot."""

    def __init__(self, pool: H2EndpointPool) -> None:
        self.pool = pool
        self.active = 1
        self.limit = 1
        self.handed_out = 0

    def has_room(self) -> bool:
        return self.active < self.limit

    def new_stream(self) -> str:
        self.active += 1
        self.handed_out += 1
        return "stream on the open connection"

    def release(self) -> None:
        self.active -= 1
        self.pool.room_freed()


async def _silent_server() -> tuple[asyncio.Server, int]:
    """Accepts and never answers: a new HTTP/2 connection to it waits for SETTINGS."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_waiter_takes_a_stream_freed_while_a_new_connection_is_slow() -> None:
    server, port = await _silent_server()
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    full = FullConnection(pool)
    pool.connections.append(full)
    try:
        waiter = asyncio.create_task(pool.connect(timeout=5.0))
        await asyncio.sleep(0.3)
        assert not waiter.done(), "no room anywhere yet: it must wait"
        full.release()
        assert await asyncio.wait_for(waiter, 1.0) == "stream on the open connection"
        assert full.handed_out == 1
    finally:
        pool.connections.remove(full)
        if pool._connecting is not None:
            pool._connecting.cancel()  # the connect still waiting for SETTINGS
        server.close()
        await server.wait_closed()


async def test_every_waiter_of_a_failed_connect_fails_and_a_later_request_tries_again() -> None:
    server, port = await _silent_server()
    server.close()
    await server.wait_closed()  # nothing listens there now: connects are refused
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    results = await asyncio.gather(
        *(pool.connect(timeout=2.0) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, OSError) for result in results), results
    first = pool._connecting
    later = await asyncio.gather(pool.connect(timeout=2.0), return_exceptions=True)
    assert isinstance(later[0], OSError)
    assert pool._connecting is not first, "a later request makes a connect of its own"


async def test_the_connect_timeout_bounds_each_connection_not_the_wait_for_a_stream() -> None:
    # An endpoint that takes one stream per connection and answers each new connection's
    # handshake after 0.15 s: the fourth of four waiters is served after about 0.6 s, longer
    # than the 0.4 s connect timeout, and that is queueing, not a failed connect.
    one_stream = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x01"

    async def slow_settings(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.15)
        writer.write(one_stream)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(slow_settings, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = H2EndpointPool("127.0.0.1", port, max_idle=8, idle_timeout=60.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        streams = await asyncio.wait_for(
            asyncio.gather(*(pool.connect(timeout=0.4) for _ in range(4))), 5.0
        )
        assert loop.time() - started > 0.4
        assert len({id(stream.connection) for stream in streams}) == 4
    finally:
        for connection in list(pool.connections):
            connection.close()
        server.close()
        await server.wait_closed()
