"""The filter pipeline wired into a real gateway process (docs/filters.md): `fault` delays
and aborts under load, over HTTP/1.1 and HTTP/2, clients that leave while a filter waits,
and a filter that outlasts its route's timeout. Real upstream (the demo upstream), real
clients (aiohttp, h2load, raw sockets, the h2 library)."""

from __future__ import annotations

import asyncio
import re
import resource
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import HOST, Gateway, Processes, Upstream, make_config, wait_until
from h2_socket import H2Socket

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adversarial"))
from harness import rss_kib, wait_rss_within

FAST_DELAY = 0.05  # the /fast/ route's fault delay
CONCURRENT_H1 = 1000
H2_STREAMS = 100
HELD_H1 = 200
HELD_H2 = 50


def fault_route(prefix: str, fault: dict, **route) -> dict:
    return {
        "name": prefix.strip("/"),
        "match": {"path_prefix": prefix},
        "upstream": "app",
        "filters": [{"type": "fault", **fault}],
        **route,
    }


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, upstream_a: Upstream
) -> Gateway:
    config = make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream_a.address}]}],
        routes=[
            fault_route("/fast/", {"delay": "50ms"}),
            fault_route("/held/", {"delay": "30s"}, timeout="60s"),
            fault_route("/abort/", {"abort_status": 503, "abort_percent": 100}),
            fault_route("/slow-filter/", {"delay": "5s"}, timeout="1s"),
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("filter-pipeline"))


def active(gateway: Gateway) -> float:
    return gateway.metric("dispa_requests_active")


def wait_active(gateway: Gateway, expected: int, timeout: float, what: str) -> None:
    wait_until(
        lambda: active(gateway) == expected,
        timeout=timeout,
        what=f"dispa_requests_active == {expected} ({what})",
    )


@pytest.fixture
def enough_descriptors() -> None:
    """1,000 client sockets in this process: raise the soft limit if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---------------------------------------------------------------- delays under load


@pytest.mark.timeout(180)
async def test_1000_concurrent_http1_requests_each_held_by_the_delay(
    gateway: Gateway, enough_descriptors
) -> None:
    url = gateway.url("/fast/hello")

    async def one(session: aiohttp.ClientSession) -> tuple[int, bytes, float]:
        started = time.monotonic()
        async with session.get(url) as response:
            body = await response.read()
            return response.status, body, time.monotonic() - started

    connector = aiohttp.TCPConnector(limit=CONCURRENT_H1, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        results = await asyncio.gather(*(one(session) for _ in range(CONCURRENT_H1)))

    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == CONCURRENT_H1, {s: statuses.count(s) for s in set(statuses)}
    assert all(body == b"hello from alpha\n" for _, body, _ in results)
    quickest = min(elapsed for _, _, elapsed in results)
    assert quickest >= FAST_DELAY, f"a request took {quickest * 1000:.1f} ms (< 50 ms delay)"
    wait_active(gateway, 0, 10.0, "after 1,000 delayed requests")


def test_100_http2_streams_on_one_connection_each_held_by_the_delay(gateway: Gateway) -> None:
    result = subprocess.run(
        ["h2load", "-n", str(H2_STREAMS), "-c", "1", "-m", str(H2_STREAMS), gateway.url("/fast/")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert "Application protocol: h2c" in output
    assert f"requests: {H2_STREAMS} total, {H2_STREAMS} started, {H2_STREAMS} done, " in output
    assert f"status codes: {H2_STREAMS} 2xx" in output, output
    timing = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\b", output)
    assert timing is not None, output
    value, unit = float(timing.group(1)), timing.group(2)
    quickest = value / {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    assert quickest >= FAST_DELAY, f"the quickest stream took {quickest * 1000:.1f} ms"
    wait_active(gateway, 0, 10.0, "after the HTTP/2 run")


# ---------------------------------------------------------------- aborts and timeouts


def test_abort_is_a_503_fault_abort_counted_in_local_replies(
    gateway: Gateway, upstream_a: Upstream
) -> None:
    before = gateway.local_replies("fault_abort")
    upstream_before = upstream_a.stats()["requests"]
    for _ in range(5):
        status, body = http_status(gateway.port, "/abort/x")
        assert status == 503, body
    assert gateway.local_replies("fault_abort") == before + 5
    # The abort answers before the upstream: it saw only our stats call.
    assert upstream_a.stats()["requests"] == upstream_before + 1


def test_pending_filter_outlasting_the_route_timeout_is_a_504_filter_timeout(
    gateway: Gateway,
) -> None:
    before = gateway.local_replies("filter_timeout")
    started = time.monotonic()
    status, body = http_status(gateway.port, "/slow-filter/x", timeout=10.0)
    elapsed = time.monotonic() - started
    assert status == 504, body
    assert 0.8 <= elapsed <= 4.0, f"answered after {elapsed:.2f}s (route timeout 1s)"
    assert gateway.local_replies("filter_timeout") == before + 1
    wait_active(gateway, 0, 5.0, "after the filter timeout")


def http_status(port: int, path: str, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection; the status and the whole raw answer."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), bytes(answer)


# ---------------------------------------------------------------- clients that leave


def hold_http1_requests(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=5.0)
        sock.sendall(b"GET /held/x HTTP/1.1\r\nHost: t\r\n\r\n")
        sockets.append(sock)
    return sockets


def reset_all(sockets: list[socket.socket]) -> None:
    """Every client leaves with a reset (SO_LINGER 0: RST, no FIN)."""
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def held_round(gateway: Gateway) -> float:
    """200 requests held by the 30 s delay, then every client gone (reset): how long the
    gateway took to end them all."""
    sockets = hold_http1_requests(gateway.port, HELD_H1)
    try:
        wait_active(gateway, HELD_H1, 20.0, "every request held by the filter")
    finally:
        reset_all(sockets)
    closed = time.monotonic()
    wait_active(gateway, 0, 5.0, "after the clients left")
    return time.monotonic() - closed


@pytest.mark.timeout(120)
def test_http1_clients_that_reset_while_the_filter_waits_end_their_exchanges(
    gateway: Gateway, upstream_a: Upstream
) -> None:
    held_round(gateway)  # warm-up: buffers and pools at their working size
    baseline = rss_kib(gateway.pid)
    upstream_before = upstream_a.stats()["requests"]
    took = held_round(gateway)
    assert took < 5.0
    wait_rss_within(gateway.pid, baseline, factor=1.2)
    # The delay was cancelled: none of those requests went on to the upstream.
    time.sleep(0.5)
    assert upstream_a.stats()["requests"] == upstream_before + 1
    assert "Traceback" not in gateway.stderr(), gateway.stderr()[-3000:]


@pytest.mark.timeout(60)
def test_http2_streams_reset_while_the_filter_waits_end_their_exchanges(
    gateway: Gateway,
) -> None:
    client = H2Socket(gateway.port)
    try:
        streams = [client.request("/held/x") for _ in range(HELD_H2)]
        wait_active(gateway, HELD_H2, 20.0, "every stream held by the filter")
        for stream_id in streams:
            client.reset(stream_id)
        wait_active(gateway, 0, 5.0, "after RST_STREAM on every stream")
        # The connection is still usable: a new stream is answered.
        stream_id = client.request("/abort/x")
        client.read_until(lambda: stream_id in client.status, timeout=5.0)
        assert client.status[stream_id] == 503
    finally:
        client.close()
    wait_active(gateway, 0, 5.0, "after the HTTP/2 client left")


@pytest.mark.timeout(60)
def test_http1_clients_that_close_with_fin_while_the_filter_waits_end_with_its_answer(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    # A FIN may be a half-close (shutdown of the client's sending side only): HTTP/1.1
    # clients may still read their answer, so the exchange waits for it, as it would for
    # an upstream (docs/filters.md). It is bounded by the filter's answer, then the write
    # meets the closed socket and the exchange ends: nothing is left behind.
    config = make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream_a.address}]}],
        routes=[fault_route("/held/", {"delay": "3s"}, timeout="60s")],
    )
    gateway = processes.gateway(config, tmp_path / "fin")
    sockets = hold_http1_requests(gateway.port, 20)
    try:
        wait_active(gateway, 20, 20.0, "every request held by the filter")
    finally:
        for sock in sockets:
            sock.close()  # FIN: the client is gone, its kernel answers anything with RST
    time.sleep(0.5)
    assert active(gateway) == 20  # still waiting for the answer
    wait_active(gateway, 0, 15.0, "once the filter answered")
    assert "Traceback" not in gateway.stderr()
