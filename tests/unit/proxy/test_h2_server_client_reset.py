"""The client's RST_STREAM, read in the same turn of the loop as its stream's response was
framed: nothing of that stream reaches the client after the reset was read, its queued
output leaves the connection's count, and its exchange ends.

Driven in memory as test_h2_server.py drives the connection (a real gateway and aiohttp
upstream in this loop, the h2 library as the client); the two reads happen one after the
other with no turn of the loop between, which is how an upstream read and the client's
reset meet in one turn on a real socket.
"""

from __future__ import annotations

import asyncio

from h2.errors import ErrorCodes

from tests.unit.proxy.test_h2_engine import parse_frames
from tests.unit.proxy.test_h2_server import connect, gateway, upstream  # noqa: F401 (fixtures)


async def test_frames_framed_before_the_reset_was_read_never_reach_the_client(gateway):  # noqa: F811
    client = connect(gateway, window=16384)
    client.auto_acknowledge = False
    client.h2.increment_flow_control_window(2**30)
    client.send()
    server = client.server
    stream_id = client.request("/bytes/4000000")
    await client.wait(lambda: len(client.bodies.get(stream_id, b"")) >= 16384, what="a window")
    stream = server.streams[stream_id]
    exchange = stream.exchange
    await client.wait(lambda: stream.output_bytes > 0, what="output held back by the window")
    client.transport.written.clear()

    # One turn: the window opens (the stream's queued output is framed at once), then the
    # client's reset is read; the turn's write comes after both.
    client.h2.acknowledge_received_data(16384, stream_id)
    server.data_received(client.h2.data_to_send())
    client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
    server.data_received(client.h2.data_to_send())
    for _ in range(3):
        await asyncio.sleep(0)  # the turn's write happens

    frames = parse_frames(bytes(client.transport.written))
    late = [f for f in frames if f.stream_id == stream_id]
    assert late == [], late
    assert stream_id not in server.streams
    assert stream.output_bytes == 0 and server.buffered == 0
    assert exchange.finished and exchange.ctx.reason == "client_disconnected"
    # The connection goes on.
    client.auto_acknowledge = True
    assert await client.response(client.request("/hello")) == (200, b"hello\n")
