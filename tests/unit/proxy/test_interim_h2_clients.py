"""Interim (1xx) responses to HTTP/2 clients: a HEADERS frame without END_STREAM carrying
the 1xx :status (RFC 9113 8.1), before the final head, hop-by-hop fields dropped; dropped
while the connection's socket is full; the upstream's 100 never doubles the gateway's.

The h2 library is the client (test_h2_server.Client, in memory); the upstream side is the
real HTTP/1.1 upstream connection on an in-memory transport, fed the upstream's bytes."""

from __future__ import annotations

import time

from memory_transport import Transport
from test_h2_server import Client

from dispa.config.load import load_text
from dispa.proxy.http2.server import H2ServerConnection
from dispa.proxy.server import Gateway
from dispa.proxy.upstream.connection import UpstreamConnection

CONFIG = """
listeners: [{name: public, address: "127.0.0.1:0"}]
upstreams: [{name: app, endpoints: [{address: "127.0.0.1:9"}], retry: {attempts: 1}}]
routes: [{match: {host: "*", path_prefix: /}, upstream: app}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
"""
EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n"
    b"Connection: x-hop\r\nX-Hop: 1\r\n\r\n"
)
FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


async def _setup() -> tuple[Client, UpstreamConnection]:
    gateway = Gateway()
    await gateway.apply(load_text(CONFIG))
    endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
    upstream = UpstreamConnection(endpoint.pool)
    upstream.connection_made(Transport())
    endpoint.pool.put(upstream, time.monotonic())
    server = H2ServerConnection(gateway, next(iter(gateway.listeners.values())).config)
    return Client(server), upstream


async def test_an_h2_client_gets_interim_heads_as_headers_frames_before_the_final_one():
    client, upstream = await _setup()
    stream_id = client.request("/p")
    upstream.data_received(b"HTTP/1.1 102 Processing\r\n\r\n" + EARLY_HINTS + FINAL)
    status, body = await client.response(stream_id)
    assert (status, body) == (200, b"hi")
    assert client.informational[stream_id] == [
        {b":status": b"102", b"via": b"1.1 dispa"},
        {b":status": b"103", b"link": b"</s.css>; rel=preload", b"via": b"1.1 dispa"},
    ]


async def test_interim_heads_are_dropped_while_the_clients_socket_is_full():
    client, upstream = await _setup()
    stream_id = client.request("/p")
    client.server.pause_writing()
    upstream.data_received(EARLY_HINTS)
    client.server.resume_writing()
    upstream.data_received(FINAL)
    assert await client.response(stream_id) == (200, b"hi")
    assert stream_id not in client.informational


async def test_one_100_to_an_h2_client_that_asked_for_it():
    client, upstream = await _setup()
    stream_id = client.open(
        "/p", extra=[(b"expect", b"100-continue"), (b"content-length", b"10000")]
    )
    await client.wait(lambda: stream_id in client.informational, what="the gateway's 100")
    client.h2.send_data(stream_id, b"x" * 10000, end_stream=True)
    client.send()
    upstream.data_received(b"HTTP/1.1 100 Continue\r\n\r\n" + EARLY_HINTS + FINAL)
    assert await client.response(stream_id) == (200, b"hi")
    statuses = [block[b":status"] for block in client.informational[stream_id]]
    assert statuses == [b"100", b"103"]
