"""Interim (1xx) responses from an HTTP/1.1 upstream: parsed as events of their own, never
remembered as a final answer, written to HTTP/1.1 clients with hop-by-hop fields dropped,
withheld from HTTP/1.0 clients, and bounded with the head they come before.

The connection-level cases drive the real client and upstream connection classes on
in-memory transports (as tests/unit/proxy/test_h1_whole_lanes.py does)."""

from __future__ import annotations

import time

import pytest
import uvloop
from memory_transport import Transport

from dispa.config.load import load_text
from dispa.proxy.events import Data, EndOfMessage, InterimResponse, Response
from dispa.proxy.http1 import parser as h1_parser
from dispa.proxy.http1.parser import MAX_RESPONSE_HEAD_BYTES, ProtocolError, ResponseParser
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.http1.writer import interim_head
from dispa.proxy.server import Gateway
from dispa.proxy.upstream.connection import UpstreamConnection

EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"

# ------------------------------------------------------------------ the parser


def test_interim_heads_are_events_of_their_own_before_the_final_response():
    events = ResponseParser().feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + EARLY_HINTS + FINAL
    )
    assert [type(e) for e in events] == [
        InterimResponse,
        InterimResponse,
        InterimResponse,
        Response,
        Data,
        EndOfMessage,
    ]
    assert [e.status for e in events[:4]] == [100, 102, 103, 200]
    assert events[2].reason == b"Early Hints"
    assert events[2].headers == [(b"Link", b"</s.css>; rel=preload")]
    assert events[3].headers == [(b"Content-Length", b"2")]  # nothing of the 103 in it


def test_interim_head_split_over_reads_and_the_final_response_in_a_later_read():
    parser = ResponseParser()
    assert parser.feed(EARLY_HINTS[:20]) == []
    (interim,) = parser.feed(EARLY_HINTS[20:])
    assert interim.status == 103
    # Not between two responses yet: the final one is still owed.
    assert parser.known_response(FINAL) is None
    events = parser.feed(FINAL)
    assert [type(e) for e in events] == [Response, Data, EndOfMessage]


def test_fields_a_connection_header_names_are_dropped_from_an_interim_head():
    (interim, *_) = ResponseParser().feed(
        b"HTTP/1.1 103 Early Hints\r\nConnection: x-secret\r\nX-Secret: 1\r\n"
        b"Link: </a.js>\r\n\r\n" + FINAL
    )
    assert interim.headers == [(b"Link", b"</a.js>")]


def test_an_interim_head_before_a_head_response():
    parser = ResponseParser()
    parser.expect_no_body = True
    events = parser.feed(EARLY_HINTS + b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    assert [(type(e), getattr(e, "status", None)) for e in events] == [
        (InterimResponse, 103),
        (Response, 200),
        (EndOfMessage, None),
    ]


def test_interim_heads_count_towards_the_response_head_bound_together():
    """An upstream may not send 1xx heads without end: with the head they come before,
    they share MAX_RESPONSE_HEAD_BYTES, each counted with its status line (a 1xx with no
    field at all is not free)."""
    parser = ResponseParser()
    interim = b"HTTP/1.1 102 Processing\r\n\r\n"
    count = MAX_RESPONSE_HEAD_BYTES // len(interim) + 1
    with pytest.raises(ProtocolError) as caught:
        for _ in range(count):
            parser.feed(interim)
    assert caught.value.status == 502


def test_the_bound_starts_afresh_with_the_next_response():
    parser = ResponseParser()
    interim = b"HTTP/1.1 102 Processing\r\n\r\n"
    for _ in range(MAX_RESPONSE_HEAD_BYTES // len(interim) // 2):
        parser.feed(interim)
    parser.feed(FINAL)
    for _ in range(MAX_RESPONSE_HEAD_BYTES // len(interim) // 2):
        parser.feed(interim)  # no 502: the first response's heads are behind us
    assert [type(e) for e in parser.feed(FINAL)] == [Response, Data, EndOfMessage]


def test_an_interim_head_is_never_remembered_as_a_final_answer():
    h1_parser._known_responses.clear()
    for _ in range(3):
        parser = ResponseParser()
        parser.feed(EARLY_HINTS + FINAL)
        parser.feed(FINAL)  # remembered: a whole final response between two messages
    assert h1_parser._known_responses
    for head, response in h1_parser._known_responses.items():
        assert response.status >= 200 and not head.startswith(b"HTTP/1.1 1"), head
    # A read that holds a 1xx head is never taken for a known response.
    assert ResponseParser().known_response(EARLY_HINTS + FINAL) is None


# ------------------------------------------------------------------ the head writer


def test_interim_head_drops_hop_by_hop_and_framing_fields_and_adds_via():
    head = interim_head(
        103,
        b"Early Hints",
        [
            (b"Link", b"</s.css>"),
            (b"Content-Length", b"0"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Via", b"1.1 origin"),
        ],
    )
    assert head == (
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nvia: 1.1 origin, 1.1 dispa\r\n\r\n"
    )


# ------------------------------------------------------------------ the connections

CONFIG = """
listeners: [{name: public, address: "127.0.0.1:0"}]
upstreams: [{name: app, endpoints: [{address: "127.0.0.1:9"}], retry: {attempts: 1}}]
routes: [{match: {host: "*", path_prefix: /}, upstream: app}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
"""


async def _exchange(request: bytes, answer_reads: list[bytes]) -> tuple[bytes, Transport]:
    gateway = Gateway()
    await gateway.apply(load_text(CONFIG))
    endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
    upstream = UpstreamConnection(endpoint.pool)
    upstream_transport = Transport()
    upstream.connection_made(upstream_transport)
    endpoint.pool.put(upstream, time.monotonic())
    client = H1ServerConnection(gateway, next(iter(gateway.listeners.values())).config)
    client_transport = Transport()
    client.connection_made(client_transport)
    client.data_received(request)
    for read in answer_reads:
        upstream.data_received(read)
    return b"".join(client_transport.writes), upstream_transport


def _exchange_now(request: bytes, answer_reads: list[bytes]) -> bytes:
    return uvloop.run(_exchange(request, answer_reads))[0]


GET = b"GET /p HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: r-1\r\n\r\n"


@pytest.mark.parametrize("split", [False, True])
def test_an_http11_client_gets_each_interim_head_before_the_final_one(split):
    answer = b"HTTP/1.1 102 Processing\r\n\r\n" + EARLY_HINTS + FINAL
    reads = [answer[:30], answer[30:70], answer[70:]] if split else [answer]
    sent = _exchange_now(GET, reads)
    assert sent.startswith(
        b"HTTP/1.1 102 Processing\r\nvia: 1.1 dispa\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nvia: 1.1 dispa\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n"
    ), sent
    assert sent.endswith(b"\r\n\r\nhi")
    assert sent.count(b"x-request-id") == 1  # the request id is the final answer's


def test_an_http10_client_gets_no_interim_head():
    request = b"GET /p HTTP/1.0\r\nHost: a.test\r\n\r\n"
    sent = _exchange_now(request, [EARLY_HINTS + FINAL])
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n"), sent
    assert b"103" not in sent and b"Link" not in sent


def test_one_100_continue_per_request_the_gateways_own():
    """The gateway answers Expect: 100-continue itself, at once; the upstream's 100 then
    answers the gateway's forwarding and is not sent on (RFC 9110 15.2: a client may get
    several 1xx, but a second 100 says nothing new)."""
    request = (
        b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 70000\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + EARLY_HINTS + FINAL

    async def run() -> bytes:
        gateway = Gateway()
        await gateway.apply(load_text(CONFIG))
        endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
        upstream = UpstreamConnection(endpoint.pool)
        upstream.connection_made(Transport())
        endpoint.pool.put(upstream, time.monotonic())
        client = H1ServerConnection(gateway, next(iter(gateway.listeners.values())).config)
        transport = Transport()
        client.connection_made(transport)
        client.data_received(request)  # a body over buffer_body_up_to: it streams
        client.data_received(b"x" * 70000)
        upstream.data_received(answer)
        return b"".join(transport.writes)

    sent = uvloop.run(run())
    assert sent.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), sent
    assert sent.count(b" 100 Continue") == 1, sent
    assert b"HTTP/1.1 103 Early Hints\r\n" in sent
    assert sent.endswith(b"\r\n\r\nhi")


def test_an_upstream_100_is_not_forwarded_to_a_client_that_did_not_ask():
    sent = _exchange_now(GET, [b"HTTP/1.1 100 Continue\r\n\r\n" + FINAL])
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n"), sent


def test_endless_interim_heads_end_in_a_502_not_in_endless_writes():
    interim = b"HTTP/1.1 102 Processing\r\n\r\n"
    reads = [interim * 100] * (MAX_RESPONSE_HEAD_BYTES // (len(interim) * 100) + 2)
    sent, upstream_transport = uvloop.run(_exchange(GET, reads))
    assert sent.count(b"102 Processing") < MAX_RESPONSE_HEAD_BYTES // len(interim)
    assert b"HTTP/1.1 502 " in sent
    assert upstream_transport.closed


def test_interim_heads_are_dropped_while_the_clients_socket_is_full():
    async def run() -> bytes:
        gateway = Gateway()
        await gateway.apply(load_text(CONFIG))
        endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
        upstream = UpstreamConnection(endpoint.pool)
        upstream.connection_made(Transport())
        endpoint.pool.put(upstream, time.monotonic())
        client = H1ServerConnection(gateway, next(iter(gateway.listeners.values())).config)
        transport = Transport()
        client.connection_made(transport)
        client.data_received(GET)
        client.pause_writing()  # the transport's buffer is over its high-water mark
        upstream.data_received(EARLY_HINTS)
        client.resume_writing()
        upstream.data_received(b"HTTP/1.1 102 Processing\r\n\r\n" + FINAL)
        return b"".join(transport.writes)

    sent = uvloop.run(run())
    assert sent.startswith(b"HTTP/1.1 102 Processing\r\n"), sent
    assert b"Early Hints" not in sent
    assert sent.endswith(b"\r\n\r\nhi")
