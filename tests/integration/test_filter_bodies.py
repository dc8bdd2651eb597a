"""Body filters wired into a real gateway process: `body_replace` on requests and
responses (Content-Length and chunked), whole-body limits (413 before the upstream sees
anything, 502 for a response over the limit), and big bodies on the filter executor.

The upstream is a small aiohttp app in a thread of the test process: it says what it got
(Content-Length, Transfer-Encoding, size, SHA-256, counts of the words replaced) and
counts the requests it saw, so a test can tell that a refused body never reached it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web
from conftest import (
    HOST,
    Gateway,
    Processes,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ResponseReceived, StreamReset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adversarial"))
from harness import rss_kib

KIB = 1024
MIB = 1024 * KIB
MAX_BODY = 8 * MIB
PIECE = b"a needle in the haystack; "  # 26 bytes, one needle


def body_of(size: int, piece: bytes = PIECE) -> bytes:
    return (piece * (size // len(piece) + 1))[:size]


# ---------------------------------------------------------------- the upstream


class InspectingUpstream:
    """aiohttp on its own loop in a thread: POST /.../inspect reports what it received;
    GET /.../page?size=N[&chunked=1] answers N bytes of "see old.example here\\n"."""

    PAGE_PIECE = b"see old.example here\n"

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the inspecting upstream did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=0, middlewares=[self._count])
        app.router.add_post("/{prefix}/inspect", self._inspect)
        app.router.add_get("/{prefix}/page", self._page)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, HOST, 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.address = f"{HOST}:{self.port}"
        self._ready.set()
        self.loop.run_forever()

    @web.middleware
    async def _count(self, request, handler):
        self.seen[request.path] += 1
        return await handler(request)

    async def _inspect(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "content_length": request.headers.get("Content-Length"),
                "transfer_encoding": request.headers.get("Transfer-Encoding"),
                "size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "needles": body.count(b"needle"),
                "threads": body.count(b"thread"),
            }
        )

    async def _page(self, request: web.Request) -> web.StreamResponse:
        body = body_of(int(request.query["size"]), self.PAGE_PIECE)
        if request.query.get("chunked") != "1":
            return web.Response(body=body, content_type="text/plain")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 64 * KIB):
            await response.write(body[start : start + 64 * KIB])
        await response.write_eof()
        return response

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def upstream():
    server = InspectingUpstream()
    try:
        yield server
    finally:
        server.close()


def replace_route(upstream: InspectingUpstream) -> dict:
    return {
        "name": "replace",
        "match": {"path_prefix": "/replace/"},
        "upstream": "app",
        "filters": [
            {
                "type": "body_replace",
                "request": [{"find": "needle", "replace": "thread"}],
                "response": [{"find": "old.example", "replace": "new.example.org"}],
                "max_body": "8MiB",
            }
        ],
    }


def gateway_config(upstream: InspectingUpstream, **top) -> dict:
    return make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream.address}]}],
        routes=[replace_route(upstream)],
        **top,
    )


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: InspectingUpstream,
) -> Gateway:
    return module_processes.gateway(gateway_config(upstream), tmp_path_factory.mktemp("bodies"))


# ---------------------------------------------------------------- raw HTTP/1.1 uploads


def post(port: int, path: str, body: bytes, *, chunked: bool, timeout: float = 30.0):
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\n{framing}\r\n\r\n".encode()
    with raw_connection(port, timeout=timeout) as (sock, stream):
        sock.sendall(head)
        if chunked:
            for start in range(0, len(body), 100 * KIB):
                piece = body[start : start + 100 * KIB]
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(body)
        return read_response(stream)


def get(port: int, path: str, *, timeout: float = 30.0):
    with raw_connection(port, timeout=timeout) as (sock, stream):
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return read_response(stream)


def assert_replaced_upstream(got: dict, expected: bytes) -> None:
    """What the inspecting upstream saw is the replaced body, with its own length."""
    assert got["needles"] == 0 and got["size"] == len(expected)
    assert got["sha256"] == hashlib.sha256(expected).hexdigest()
    assert got["content_length"] == str(len(expected))


# ---------------------------------------------------------------- request side


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_1_mib_upload_reaches_the_upstream_replaced_with_its_new_length(
    gateway: Gateway, upstream: InspectingUpstream, chunked: bool
) -> None:
    sent = body_of(1 * MIB)
    expected = sent.replace(b"needle", b"thread")
    response = post(gateway.port, "/replace/inspect", sent, chunked=chunked)
    assert response.status == 200, response.body[:500]
    got = json.loads(response.body)
    assert got["threads"] == sent.count(b"needle") > 40_000
    assert_replaced_upstream(got, expected)
    assert got["transfer_encoding"] is None  # sent with its own length, never chunked


def test_declared_100_mib_upload_is_a_413_at_once_and_never_reaches_the_upstream(
    gateway: Gateway, upstream: InspectingUpstream
) -> None:
    before = gateway.local_replies("body_too_large")
    seen = upstream.seen["/replace/inspect"]
    started = time.monotonic()
    with raw_connection(gateway.port, timeout=10.0) as (sock, stream):
        # Only the head: the answer must not wait for any of the 100 MiB.
        head = f"POST /replace/inspect HTTP/1.1\r\nHost: t\r\nContent-Length: {100 * MIB}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        response = read_response(stream)
    assert response.status == 413, response
    assert time.monotonic() - started < 3.0
    assert gateway.local_replies("body_too_large") == before + 1
    assert upstream.seen["/replace/inspect"] == seen


def stream_chunked_until_answered(port: int, total: int) -> tuple[int, bytes]:
    """Send up to ``total`` body bytes in 64 KiB chunks, stopping as soon as the gateway
    answers or the connection fails; the bytes sent and what was read back."""
    piece = body_of(64 * KIB)
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent = 0
    answer = b""
    deadline = time.monotonic() + 60
    with socket.create_connection((HOST, port), timeout=10.0) as sock:
        sock.sendall(
            b"POST /replace/inspect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.setblocking(False)
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(frame)  # may be partial: counted as sent all the same
                except BlockingIOError:
                    continue
                except OSError:
                    break
        sock.setblocking(True)
        sock.settimeout(5.0)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except OSError:
            pass
    return sent, answer


@pytest.mark.timeout(120)
def test_streamed_100_mib_upload_is_cut_off_with_a_413_past_the_limit(
    gateway: Gateway, upstream: InspectingUpstream
) -> None:
    # Warm-up: one body through at its full size, so the baseline includes the buffers a
    # normal big body costs.
    assert post(gateway.port, "/replace/inspect", body_of(MAX_BODY - 1), chunked=True).status == 200
    baseline = rss_kib(gateway.pid)
    seen = upstream.seen["/replace/inspect"]
    before = gateway.local_replies("body_too_large")
    sent, answer = stream_chunked_until_answered(gateway.port, 100 * MIB)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent < 40 * MIB, f"the client sent {sent / MIB:.1f} MiB before being cut off"
    assert gateway.local_replies("body_too_large") == before + 1
    assert upstream.seen["/replace/inspect"] == seen
    peak_growth = gateway.vm_hwm_kib() - baseline
    assert peak_growth < 40 * MIB // KIB, f"the gateway's peak RSS grew by {peak_growth} KiB"


# ---------------------------------------------------------------- response side


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_response_replaced_with_its_new_content_length(gateway: Gateway, chunked: bool) -> None:
    size = 300 * KIB
    original = body_of(size, InspectingUpstream.PAGE_PIECE)
    expected = original.replace(b"old.example", b"new.example.org")
    flag = "&chunked=1" if chunked else ""
    response = get(gateway.port, f"/replace/page?size={size}{flag}")
    assert response.status == 200
    assert response.body == expected
    assert response.header("content-length") == str(len(expected))
    assert response.header("transfer-encoding") is None


def test_response_body_over_the_limit_is_a_502(gateway: Gateway) -> None:
    before = gateway.local_replies("response_body_too_large")
    response = get(gateway.port, f"/replace/page?size={MAX_BODY + 1}")
    assert response.status == 502, response.status
    assert gateway.local_replies("response_body_too_large") == before + 1
    wait_until(
        lambda: gateway.metric("dispa_requests_active") == 0,
        timeout=5.0,
        what="no exchange left active",
    )


# ---------------------------------------------------------------- the executor


def test_big_bodies_run_on_the_executor_and_a_full_one_answers_503(
    processes: Processes, tmp_path: Path, upstream: InspectingUpstream
) -> None:
    config = gateway_config(upstream, filters_executor={"threads": 1, "queue": 0})
    gateway = processes.gateway(config, tmp_path / "executor")
    body = body_of(4 * MIB)

    # One body over 64 KiB: one job for the executor, replaced correctly.
    response = post(gateway.port, "/replace/inspect", body, chunked=False)
    assert response.status == 200
    assert gateway.metric("dispa_filter_executor_jobs_total", outcome="submitted") == 1

    statuses: Counter[int] = Counter()
    with ThreadPoolExecutor(max_workers=24) as clients:
        for _ in range(5):  # rounds, until one thread and no queue could not keep up
            futures = [
                clients.submit(post, gateway.port, "/replace/inspect", body, chunked=False)
                for _ in range(24)
            ]
            statuses.update(future.result().status for future in futures)
            if statuses[503]:
                break
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, f"no request found the executor full: {statuses}"
    rejected = gateway.metric("dispa_filter_executor_jobs_total", outcome="rejected")
    submitted = gateway.metric("dispa_filter_executor_jobs_total", outcome="submitted")
    assert rejected == statuses[503]
    assert gateway.local_replies("filter_executor_full") == statuses[503]
    assert submitted == 1 + statuses[200]
    assert gateway.metric("dispa_filter_executor_outstanding") == 0


# ---------------------------------------------------------------- HTTP/2 uploads

CURL_H2 = ("curl", "--silent", "--show-error", "--noproxy", "*", "--http2-prior-knowledge")


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_http2_upload_reaches_the_upstream_replaced(
    gateway: Gateway, tmp_path: Path, declared: bool
) -> None:
    sent = body_of(1 * MIB)
    expected = sent.replace(b"needle", b"thread")
    path = tmp_path / "upload.bin"
    path.write_bytes(sent)
    # --data-binary @file declares its length; -T - (from stdin) sends none.
    upload = ["--data-binary", f"@{path}"] if declared else ["-X", "POST", "-T", "-"]
    result = subprocess.run(
        [*CURL_H2, *upload, gateway.url("/replace/inspect")],
        input=None if declared else sent,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert_replaced_upstream(json.loads(result.stdout), expected)


def h2_upload_until_answered(port: int, total: int) -> tuple[int, int | None, int | None]:
    """An HTTP/2 POST with no length, sending up to ``total`` body bytes as fast as the
    windows allow and stopping once the gateway answers: the bytes sent, the status, and
    the RST_STREAM code that followed (None if none)."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    sent, status, reset = 0, None, None
    piece = body_of(16 * KIB)
    deadline = time.monotonic() + 30
    with socket.create_connection((HOST, port), timeout=10.0) as sock:
        stream_id = client.get_next_available_stream_id()
        head = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"t")]
        client.send_headers(stream_id, [*head, (b":path", b"/replace/inspect")])
        sock.sendall(client.data_to_send())
        while (status is None or reset is None) and time.monotonic() < deadline:
            window = client.local_flow_control_window(stream_id) if status is None else 0
            if window and sent < total:
                size = min(window, len(piece), total - sent)
                client.send_data(stream_id, piece[:size])
                sent += size
                sock.sendall(client.data_to_send())
                if not select.select([sock], [], [], 0)[0]:
                    continue
            elif not select.select([sock], [], [], 1.0)[0]:
                continue
            data = sock.recv(256 * KIB)
            if not data:
                break
            for event in client.receive_data(data):
                if isinstance(event, ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, StreamReset):
                    reset = event.error_code
            sock.sendall(client.data_to_send())
    return sent, status, reset


def test_http2_upload_over_the_limit_is_a_413_and_never_reaches_the_upstream(
    gateway: Gateway, upstream: InspectingUpstream
) -> None:
    seen = upstream.seen["/replace/inspect"]
    before = gateway.local_replies("body_too_large")
    sent, status, reset = h2_upload_until_answered(gateway.port, 100 * MIB)
    assert status == 413
    # The complete answer, then RST_STREAM NO_ERROR: the rest of the body is not wanted
    # (RFC 9113 8.1). (curl reports that as error 92, hence the h2 library here.)
    assert reset == ErrorCodes.NO_ERROR
    assert sent < MAX_BODY + 4 * MIB, f"the client sent {sent / MIB:.1f} MiB"
    assert gateway.local_replies("body_too_large") == before + 1
    assert upstream.seen["/replace/inspect"] == seen


def test_http2_uploads_the_full_executor_refuses_never_reach_the_upstream(
    processes: Processes, tmp_path: Path, upstream: InspectingUpstream
) -> None:
    config = gateway_config(upstream, filters_executor={"threads": 1, "queue": 0})
    gateway = processes.gateway(config, tmp_path / "executor-h2")
    big = tmp_path / "big.bin"
    big.write_bytes(body_of(4 * MIB))
    small = tmp_path / "small.bin"
    small.write_bytes(body_of(16 * KIB))
    statuses: Counter[str] = Counter()
    for _ in range(5):  # rounds, until one thread and no queue could not keep up
        # Small bodies first, many at once: idle upstream connections wait in the pool,
        # so a request that went upstream by mistake would be sent at once, not connect.
        h2load(gateway, small, requests=24, streams=24)
        seen = upstream.seen["/replace/inspect"]
        codes = h2load(gateway, big, requests=24, streams=12)
        statuses.update(codes)
        # Only the uploads answered 200 went upstream: a refused one never does.
        assert upstream.seen["/replace/inspect"] - seen == codes["2xx"], codes
        if codes["5xx"]:
            break
    rejected = gateway.metric("dispa_filter_executor_jobs_total", outcome="rejected")
    assert rejected == statuses["5xx"] > 0, (rejected, statuses)


def h2load(gateway: Gateway, body: Path, *, requests: int, streams: int) -> dict[str, int]:
    """POST ``body`` ``requests`` times over two HTTP/2 connections; the status classes."""
    result = subprocess.run(
        [
            "h2load",
            "-n",
            str(requests),
            "-c",
            "2",
            "-m",
            str(streams),
            "-d",
            str(body),
            gateway.url("/replace/inspect"),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert f"{requests} done" in output, output
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    assert codes is not None, output
    return dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, codes.groups()), strict=True))


def test_http2_body_held_for_buffering_then_timed_out_never_reaches_the_upstream(
    processes: Processes, tmp_path: Path, upstream: InspectingUpstream
) -> None:
    config = make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream.address}]}],
        routes=[{"match": {"path_prefix": "/plain/"}, "upstream": "app"}],
        listeners=[{"name": "public", "limits": {"body_timeout": "1s"}}],
    )
    gateway = processes.gateway(config, tmp_path / "held-body")
    http_get_upstream_once(gateway)  # an idle upstream connection in the pool
    seen = upstream.seen["/plain/inspect"]
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    status = None
    with socket.create_connection((HOST, gateway.port), timeout=10.0) as sock:
        stream_id = client.get_next_available_stream_id()
        head = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"t")]
        client.send_headers(
            stream_id, [*head, (b":path", b"/plain/inspect"), (b"content-length", b"1000")]
        )
        client.send_data(stream_id, b"x" * 10)  # then nothing: the body timeout fires
        sock.sendall(client.data_to_send())
        deadline = time.monotonic() + 10
        while status is None and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in client.receive_data(data):
                if isinstance(event, ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
            sock.sendall(client.data_to_send())
    assert status == 408
    time.sleep(0.3)
    assert upstream.seen["/plain/inspect"] == seen


def http_get_upstream_once(gateway: Gateway) -> None:
    response = post(gateway.port, "/plain/inspect", b"warm", chunked=False)
    assert response.status == 200
