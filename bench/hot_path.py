"""Python cost of one proxied request, without the network: ``python bench/hot_path.py``.

Drives the real client-side protocol, exchange and upstream connection with in-memory
transports: request bytes in, one pooled upstream connection answering, response bytes
out. What it prints is the data plane's own CPU per request (parsing, routing, filters,
balancing, head building, stats), the part that syscalls do not explain. Use it to judge
a hot-path change in seconds; ``make bench`` remains the measure that counts.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop
from h2.config import H2Configuration
from h2.connection import H2Connection

from dispa.config.load import load_text
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.http2.server import H2ServerConnection
from dispa.proxy.server import Gateway
from dispa.proxy.upstream.connection import UpstreamConnection

MINIMAL = """
listeners: [{name: public, address: "127.0.0.1:0"}]
upstreams: [{name: app, endpoints: [{address: "127.0.0.1:9"}]}]
routes: [{match: {host: "*", path_prefix: /}, upstream: app}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
"""
CHAIN = """
filters:
  - {type: headers, request_add: {x-bench: "1"}, response_add: {x-served-by: dispa}}
  - {type: local_rate_limit, key: source_ip, rate: 100000000, burst: 100000000}
"""
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 00:12:13 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
)


class MemoryTransport:
    """Just enough of a transport: counts what is written."""

    def __init__(self, peer=("127.0.0.1", 40000)) -> None:
        self.written = 0
        self.writes = 0
        self.peer = peer

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def get_extra_info(self, name, default=None):
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    abort = close


async def measure(config_text: str, requests: int) -> float:
    gateway = Gateway()
    await gateway.apply(load_text(config_text))
    endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
    upstream = UpstreamConnection(endpoint.pool)
    upstream_transport = MemoryTransport()
    upstream.connection_made(upstream_transport)
    endpoint.pool.put(upstream, time.monotonic())
    listener = next(iter(gateway.listeners.values())).config
    # The HTTP/1.1 connection itself (a listener's sniffer hands each new connection to
    # it after the first read; that once-per-connection step is not what is measured).
    client = H1ServerConnection(gateway, listener)
    client_transport = MemoryTransport()
    client.connection_made(client_transport)
    started = time.perf_counter()
    for _ in range(requests):
        client.data_received(REQUEST)
        upstream.data_received(RESPONSE)
    elapsed = time.perf_counter() - started
    # Every request went upstream in one write and every answer came back in one write.
    assert upstream_transport.writes == requests, "a request was not forwarded"
    assert client_transport.writes == requests, "a response did not reach the client"
    assert endpoint.pool.idle, "the upstream connection did not return to its pool"
    return elapsed / requests * 1e6


def h2_client_reads(requests: int, streams_per_read: int) -> list[bytes]:
    """What an h2load client sends, read by read: the preface, then ``streams_per_read``
    GET streams per read (as ``-m``), a connection WINDOW_UPDATE now and then for the
    answers. Made by the h2 library as a client, before the clock starts."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    reads = [client.data_to_send()]
    headers = [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"127.0.0.1:8080"),
        (b"user-agent", b"h2load nghttp2/1.52.0"),
    ]
    for first in range(0, requests, streams_per_read):
        for _ in range(min(streams_per_read, requests - first)):
            client.send_headers(client.get_next_available_stream_id(), headers, end_stream=True)
        if first % 4000 == 0:
            client.increment_flow_control_window(2**20)
        reads.append(client.data_to_send())
        # No answer ever reaches this client, so its streams would stay open and each
        # new one costs h2 a pass over all of them (minutes for 50,000 requests).
        client.streams.clear()
    return reads


async def measure_h2(config_text: str, requests: int, streams_per_read: int = 4) -> float:
    """As ``measure``, over HTTP/2: streams_per_read requests per client read, each on
    its own pooled upstream connection, and the client's frames written once per turn."""
    reads = h2_client_reads(requests, streams_per_read)  # first: it takes a while
    gateway = Gateway()
    await gateway.apply(load_text(config_text))
    endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
    upstreams = []
    for _ in range(streams_per_read):
        upstream = UpstreamConnection(endpoint.pool)
        upstream.connection_made(MemoryTransport())
        endpoint.pool.put(upstream, time.monotonic())
        upstreams.append(upstream)
    listener = next(iter(gateway.listeners.values())).config
    client = H2ServerConnection(gateway, listener)
    client_transport = MemoryTransport()
    client.connection_made(client_transport)
    client.data_received(reads[0])
    await asyncio.sleep(0)
    started = time.perf_counter()
    for read in reads[1:]:
        client.data_received(read)
        for upstream in upstreams:
            if upstream.exchange is not None:
                upstream.data_received(RESPONSE)
        await asyncio.sleep(0)  # the turn ends: the client's frames go out
    elapsed = time.perf_counter() - started
    answered = sum(upstream.transport.writes for upstream in upstreams)
    assert answered == requests, f"{answered} of {requests} requests went upstream"
    assert not client.streams, "a stream was not answered"
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--h2", action="store_true", help="HTTP/2 clients (4 streams a read)")
    args = parser.parse_args()
    run = measure_h2 if args.h2 else measure
    for name, text in (("minimal", MINIMAL), ("chain", MINIMAL + CHAIN)):
        best = min(uvloop.run(run(text, args.requests)) for _ in range(3))
        print(f"{name:8} {best:6.1f} us of Python per proxied request")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
