"""The data plane's shortcuts give the same answers as the long way: lookup tables of the
head writer and the parser (whatever their size, whatever the case of names), and the
whole-request / whole-response lanes of the connections (measured by bench/hot_path.py)."""

import sys
from pathlib import Path

import httptools
import uvloop

from dispa.proxy.events import Request, Response
from dispa.proxy.http1 import parser as h1_parser
from dispa.proxy.http1 import writer as h1_writer
from dispa.proxy.http1.parser import RequestParser, ResponseParser
from dispa.proxy.http1.writer import request_head, response_head

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import hot_path


class Head:
    """What httptools reads back from a head Dispa wrote."""

    def __init__(self, data: bytes, response: bool) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.done = False
        kind = httptools.HttpResponseParser if response else httptools.HttpRequestParser
        kind(self).feed_data(data)
        assert self.done

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.done = True

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


def forward(headers) -> Head:
    data = request_head(
        "GET",
        b"/",
        headers,
        client_ip="10.0.0.1",
        scheme="http",
        host=b"a.test",
        request_id=b"id-1",
        content_length=None,
        chunked=False,
    )
    return Head(data, response=False)


def answer(headers, proxied: bool = True) -> Head:
    data = response_head(
        200,
        b"OK",
        headers,
        content_length=2,
        chunked=False,
        keep_alive=True,
        proxied=proxied,
        request_id=b"id-1",
    )
    return Head(data + b"ok", response=True)


def test_header_kinds_hold_whatever_the_case_of_the_name() -> None:
    for spelling in (b"via", b"Via", b"VIA"):
        head = answer([(spelling, b"1.0 cdn")])
        assert head.values(b"via") == [b"1.0 cdn, 1.1 dispa"]
    for spelling in (b"Connection", b"CONNECTION"):
        head = forward([(spelling, b"close"), (b"Host", b"a.test")])
        assert head.values(b"connection") == []
    head = forward([(b"X-Forwarded-For", b"1.2.3.4"), (b"x-forwarded-for", b"5.6.7.8")])
    assert head.values(b"x-forwarded-for") == [b"1.2.3.4, 5.6.7.8, 10.0.0.1"]


def test_responses_keep_what_requests_rewrite() -> None:
    # An upstream's X-Forwarded-For is just a header on the way back; its own request id
    # wins over Dispa's; a local reply's Via is left alone.
    head = answer([(b"X-Forwarded-For", b"9.9.9.9"), (b"X-Request-Id", b"upstream-7")])
    assert head.values(b"x-forwarded-for") == [b"9.9.9.9"]
    assert head.values(b"x-request-id") == [b"upstream-7"]
    head = answer([(b"Via", b"1.0 other")], proxied=False)
    assert head.values(b"via") == [b"1.0 other"]
    # A Connection header's own tokens were removed by the parser (test_h1_writer.py);
    # the writer drops the Connection field itself, whatever it names.
    head = answer([(b"Connection", b"keep-alive, X-Private"), (b"X-Other", b"1")])
    assert head.values(b"connection") == []
    assert head.values(b"x-other") == [b"1"]


def test_header_kinds_stay_right_past_the_table_size() -> None:
    names = [b"X-Name-%d" % i for i in range(h1_writer._KIND_TABLE_SIZE + 50)]
    for name in names:
        head = forward([(b"Host", b"a.test"), (name, b"v"), (b"Keep-Alive", b"5")])
        assert head.values(name.lower()) == [b"v"]
        assert head.values(b"keep-alive") == []
    assert len(h1_writer._request_kinds) <= h1_writer._KIND_TABLE_SIZE


def test_hosts_and_methods_parse_alike_past_their_tables() -> None:
    parser = RequestParser(65536)
    for i in range(h1_parser._HOST_CACHE_SIZE + 20):
        events = parser.feed(b"GET / HTTP/1.1\r\nHost: Host-%d.Test:8080\r\n\r\n" % i)
        request = events[0]
        assert request.host == f"host-{i}.test"
        assert request.host_header == b"Host-%d.Test:8080" % i
    assert len(h1_parser._hosts) <= h1_parser._HOST_CACHE_SIZE
    events = parser.feed(b"PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n")
    assert events[0].method == "PROPFIND"
    assert type(events[0]) is Request and events[0]._fields == Request._fields


def test_a_response_head_resets_for_the_next_response() -> None:
    parser = ResponseParser()
    first = parser.feed(b"HTTP/1.1 404 Nope\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n")
    second = parser.feed(b"HTTP/1.1 200 OK\r\nX-B: 2\r\nContent-Length: 0\r\n\r\n")
    assert first[0] == Response(
        0, 404, b"Nope", [(b"X-A", b"1"), (b"Content-Length", b"0")], "1.1", True, 0
    )
    assert second[0].reason == b"OK"
    assert second[0].headers == [(b"X-B", b"2"), (b"Content-Length", b"0")]


def test_the_hot_path_serves_every_request_end_to_end() -> None:
    # Requests and whole responses in single reads, through the real connection classes:
    # the lane the benchmark measures. measure() asserts the exchanges completed.
    for config in (hot_path.MINIMAL, hot_path.MINIMAL + hot_path.CHAIN):
        micros = uvloop.run(hot_path.measure(config, 200))
        assert micros > 0
