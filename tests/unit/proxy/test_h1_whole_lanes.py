"""The one-step lanes of the HTTP/1.1 data plane give what the long way gives: the same
bytes to the client and upstream, the same pool, counters and timers afterwards.

Each case runs twice through the real connection classes on in-memory transports: once
as the gateway runs, once with the whole-response lane sent the long way (three steps)."""

from __future__ import annotations

import time

import pytest
import uvloop
from memory_transport import Transport

from dispa.config.load import load_text
from dispa.proxy.exchange import NO_DEADLINE, Exchange
from dispa.proxy.http1 import parser as h1_parser
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.server import Gateway
from dispa.proxy.upstream.connection import UpstreamConnection

CONFIG = """
listeners: [{name: public, address: "127.0.0.1:0"}]
upstreams: [{name: app, endpoints: [{address: "127.0.0.1:9"}]}]
routes: [{match: {host: "*", path_prefix: /}, upstream: app}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
filters:
  - type: headers
    request_add: {x-a: "1"}
    response_add: {x-served-by: dispa}
    response_remove: [server]
"""
REQUEST = b"GET /p HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: fixed-1\r\n\r\n"
HEAD_REQUEST = b"HEAD /p HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: fixed-2\r\n\r\n"
CLOSE_REQUEST = (
    b"GET /p HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: fixed-3\r\nConnection: close\r\n\r\n"
)
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 404 Not Found\r\nServer: up\r\nX-Request-Id: up-9\r\nContent-Length: 4\r\n\r\nnope",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nVia: 1.0 cdn\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
]


async def exchange_once(request: bytes, answer: bytes, draining: bool = False) -> dict:
    gateway = Gateway()
    await gateway.apply(load_text(CONFIG))
    gateway.draining = draining
    endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
    upstream = UpstreamConnection(endpoint.pool)
    upstream_transport = Transport()
    upstream.connection_made(upstream_transport)
    endpoint.pool.put(upstream, time.monotonic())
    client = H1ServerConnection(gateway, next(iter(gateway.listeners.values())).config)
    client_transport = Transport()
    client.connection_made(client_transport)
    for _ in range(2):  # the second time, both heads are known (h1_parser's tables)
        if client.closing or upstream.closed:
            break  # a connection the first answer closed
        client.data_received(request)
        if request.startswith(b"HEAD"):  # an answer to HEAD has no body, whatever its length
            upstream.data_received(answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n")
        else:
            upstream.data_received(answer)
    stats = gateway.stats.snapshot()
    return {
        "to_client": client_transport.writes,
        "to_upstream": upstream_transport.writes,
        "pooled": list(endpoint.pool.idle) == [upstream],
        "upstream_closed": upstream.closed,
        "client_closed": client_transport.closed,
        "active": (endpoint.active_requests, gateway.snapshot.upstreams["app"].active_requests),
        "requests": stats["requests"],
        "endpoints": stats["endpoint_requests"],
        "latency_count": sum(h["count"] for h in stats["latency"].values()),
        "idle_armed": client.timer_reason == "idle" and client.deadline != NO_DEADLINE,
        "ewma_sampled": endpoint.ewma_latency > 0,
    }


def run_both(monkeypatch, request: bytes, answer: bytes, draining: bool = False):
    h1_parser._known_requests.clear()
    h1_parser._known_responses.clear()
    fast = uvloop.run(exchange_once(request, answer, draining))
    with monkeypatch.context() as patch:
        patch.setattr(Exchange, "_answer_whole", Exchange._answer_in_steps)
        h1_parser._known_requests.clear()
        h1_parser._known_responses.clear()
        slow = uvloop.run(exchange_once(request, answer, draining))
    return fast, slow


@pytest.mark.parametrize("answer", RESPONSES)
@pytest.mark.parametrize("request_bytes", [REQUEST, HEAD_REQUEST, CLOSE_REQUEST])
def test_the_whole_response_lane_matches_the_long_way(monkeypatch, request_bytes, answer):
    fast, slow = run_both(monkeypatch, request_bytes, answer)
    assert fast == slow
    assert fast["to_client"], "nothing reached the client"
    assert all(b"x-served-by: dispa\r\n" in head for head in fast["to_client"])


def test_the_lane_says_close_while_draining(monkeypatch):
    fast, slow = run_both(monkeypatch, REQUEST, RESPONSES[0], draining=True)
    assert fast == slow
    assert b"connection: close\r\n" in fast["to_client"][0] and fast["client_closed"]


def test_the_lane_writes_head_and_body_once():
    h1_parser._known_responses.clear()
    result = uvloop.run(exchange_once(REQUEST, RESPONSES[0]))
    assert len(result["to_client"]) == 2  # one write per response
    head, _, body = result["to_client"][1].partition(b"\r\n\r\n")
    head += b"\r\n"
    assert body == b"hello"
    assert b"x-request-id: fixed-1\r\n" in head and b"via: 1.1 dispa\r\n" in head
    assert b"server:" not in head.lower()
    assert result["pooled"] and result["idle_armed"] and result["ewma_sampled"]
