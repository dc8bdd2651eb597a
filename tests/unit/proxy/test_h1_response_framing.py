"""How an HTTP/1.1 upstream's response ends: at its Content-Length (bytes after it are
the upstream's fault: dropped, and the connection never reused), or, with no length and
no chunked coding, when the upstream closes (a complete response, RFC 9112 6.3 item 8).

The connection-level cases drive the real client and upstream connection classes on
in-memory transports (as tests/unit/proxy/test_h1_whole_lanes.py does)."""

from __future__ import annotations

import logging
import time

import pytest
import uvloop
from memory_transport import Transport

from dispa.config.load import load_text
from dispa.proxy.events import Data, EndOfMessage, Response
from dispa.proxy.http1.parser import ResponseParser
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.server import Gateway
from dispa.proxy.upstream.connection import UpstreamConnection

HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"

# ------------------------------------------------------------------ the parser


@pytest.mark.parametrize(
    "after",
    [b"world", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad", b"world" + SMUGGLED],
)
def test_bytes_after_the_declared_length_end_the_response_and_are_dropped(after):
    parser = ResponseParser()
    events = parser.feed(HEAD + b"hello" + after)
    assert [type(e) for e in events] == [Response, Data, EndOfMessage]
    assert events[1].data == b"hello"
    assert parser.surplus


def test_a_response_that_ends_where_its_length_says_leaves_no_surplus():
    parser = ResponseParser()
    parser.feed(HEAD + b"hel")
    parser.feed(b"lo")
    assert not parser.surplus
    # One stray empty line after a body is tolerated (llhttp skips it): it cannot be
    # taken for anything.
    parser.feed(HEAD + b"hello\r\n")
    assert not parser.surplus


def test_surplus_in_the_read_that_ends_the_body():
    parser = ResponseParser()
    assert [type(e) for e in parser.feed(HEAD + b"hel")] == [Response, Data]
    events = parser.feed(b"loworld")
    assert [type(e) for e in events] == [Data, EndOfMessage]
    assert events[0].data == b"lo"
    assert parser.surplus


def test_a_body_after_a_head_response_is_surplus():
    parser = ResponseParser()
    parser.expect_no_body = True
    events = parser.feed(HEAD + b"hello")
    assert [type(e) for e in events] == [Response, EndOfMessage]
    assert parser.surplus


# ------------------------------------------------------------------ the connections

CONFIG = """
listeners: [{name: public, address: "127.0.0.1:0"}]
upstreams: [{name: app, endpoints: [{address: "127.0.0.1:9"}]}]
routes: [{match: {host: "*", path_prefix: /}, upstream: app}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
"""
GET = b"GET /p HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: r-1\r\n\r\n"


async def _run(request: bytes, reads: list[bytes], eof: bool = False) -> dict:
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
    for read in reads:
        upstream.data_received(read)
    if eof:
        upstream.eof_received()
        upstream.connection_lost(None)
    return {
        "to_client": b"".join(client_transport.writes),
        # What the next request would get from the pool (a closed one is skipped).
        "pooled": endpoint.pool.take(time.monotonic()) is upstream,
        "upstream_closed": upstream.closed,
        "client_closed": client_transport.closed,
        "finished": client.exchange is None,
        "stats": gateway.stats.snapshot()["requests"],
    }


@pytest.mark.parametrize(
    "reads",
    [
        [HEAD + b"helloworld"],
        [HEAD + b"hello" + SMUGGLED],
        [HEAD + b"hel", b"loworld"],
        [HEAD + b"hello", b"world"],  # the extra bytes come once the connection is idle
    ],
    ids=["one-read", "smuggled-response", "split-body", "later-read"],
)
def test_a_body_longer_than_its_length_gives_the_client_the_declared_bytes(reads, caplog):
    with caplog.at_level(logging.WARNING, logger="dispa.upstream"):
        result = uvloop.run(_run(GET, reads))
    sent = result["to_client"]
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n"), sent
    assert b"content-length: 5\r\n" in sent
    assert sent.endswith(b"\r\n\r\nhello")
    assert b"forged" not in sent
    assert result["upstream_closed"] and not result["pooled"]
    assert not result["client_closed"]  # the client's connection is fine
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("127.0.0.1:9" in w and "upstream app" in w for w in warnings), warnings


def test_a_head_response_with_a_body_closes_the_upstream_connection(caplog):
    request = b"HEAD /p HTTP/1.1\r\nHost: a.test\r\n\r\n"
    with caplog.at_level(logging.WARNING, logger="dispa.upstream"):
        result = uvloop.run(_run(request, [HEAD + b"hello"]))
    assert result["to_client"].startswith(b"HTTP/1.1 200 OK\r\n")
    assert result["to_client"].endswith(b"\r\n\r\n")
    assert result["upstream_closed"] and not result["pooled"]


def test_an_unasked_response_on_an_idle_connection_closes_it_quietly(caplog):
    """Servers say 408 on an idle keep-alive connection before closing it: not a fault
    worth a warning (only stray body bytes are)."""
    with caplog.at_level(logging.WARNING, logger="dispa.upstream"):
        result = uvloop.run(_run(GET, [HEAD + b"hello", b"HTTP/1.1 408 Request Timeout\r\n\r\n"]))
    assert result["upstream_closed"] and not result["pooled"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_a_close_delimited_response_ends_cleanly_when_the_upstream_closes(version):
    answer = b"HTTP/" + version + b" 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    result = uvloop.run(_run(GET, [answer + b"first ", b"second"], eof=True))
    sent = result["to_client"]
    assert b"transfer-encoding: chunked\r\n" in sent
    assert sent.endswith(b"6\r\nfirst \r\n6\r\nsecond\r\n0\r\n\r\n"), sent
    assert result["finished"] and not result["client_closed"]
    assert [row[2:] for row in result["stats"]] == [["2xx", 1]], result["stats"]


def test_a_close_delimited_response_to_an_http10_client_ends_with_the_close():
    request = b"GET /p HTTP/1.0\r\nHost: a.test\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    result = uvloop.run(_run(request, [answer], eof=True))
    sent = result["to_client"]
    assert b"transfer-encoding" not in sent and b"content-length" not in sent
    assert sent.endswith(b"\r\n\r\nall of it")
    assert result["client_closed"]


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
    ],
)
def test_bytes_after_a_last_response_are_surplus_too(head):
    """llhttp refuses data after a response that closes the connection before any
    callback: the response is still forwarded, not turned into a 502."""
    parser = ResponseParser()
    events = parser.feed(head + b"helloworld")
    assert [type(e) for e in events] == [Response, Data, EndOfMessage]
    assert parser.surplus
