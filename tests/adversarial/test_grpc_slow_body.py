"""Slow bodies that claim to be gRPC: the listener's body timeouts do not apply to a gRPC
stream (its client may stay quiet while the server streams), so an attacker could try
``content-type: application/grpc`` to hold upstreams with a trickle. Two bounds remain:

- a request to an HTTP/1.1 upstream cannot be gRPC, whatever it claims: the slow-body
  rules (``body_timeout``, ``min_body_rate``) hold, and a trickle is cut as any other;
- a real gRPC call (an ``h2`` upstream) is bounded by the upstream's idle timeout (and
  the client's deadline, which an attacker does not send), and by ``max_uploads_per_client``.

Each attack: one HTTP/2 connection of calls whose bodies trickle a byte at a time, bounded
in time, while a probe on fresh connections must keep being answered, and the gateway's
RSS must come back near its baseline.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
from conftest import HOST, PYTHON, free_port, make_config, wait_until
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ResponseReceived, StreamEnded, StreamReset, TrailersReceived
from harness import Probe, RecordingUpstream, rss_kib, wait_rss_within

GRPC_UPSTREAM = (
    Path(__file__).resolve().parents[1] / "integration" / "upstreams" / "grpc_upstream.py"
)
# A gRPC message prefix that announces 4 KiB: the message never completes.
MESSAGE_PREFIX = b"\x00\x00\x00\x10\x00"


class GrpcTrickle:
    """One HTTP/2 connection opening gRPC calls whose request bodies trickle one byte
    per round; ``outcomes[stream]`` is (grpc-status, grpc-message) once it ended, or
    ("reset", code)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.open: list[int] = []
        self.outcomes: dict[int, tuple] = {}
        self._status: dict[int, tuple] = {}
        self._flush()

    def __enter__(self) -> GrpcTrickle:
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def start_calls(self, path: str, count: int) -> None:
        for _ in range(count):
            stream_id = self.h2.get_next_available_stream_id()
            headers = [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", path.encode()),
                (b":authority", b"grpc.test"),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ]
            self.h2.send_headers(stream_id, headers)
            self.h2.send_data(stream_id, MESSAGE_PREFIX)
            self.open.append(stream_id)
        self._flush()

    def trickle(self, *, every: float, seconds: float) -> float:
        """A byte on every open call each ``every`` seconds, until all have ended or
        ``seconds`` pass; the seconds it took."""
        started = time.monotonic()
        ends = started + seconds
        while self.open and time.monotonic() < ends:
            for stream_id in self.open:
                self.h2.send_data(stream_id, b"x")
            self._flush()
            round_ends = min(ends, time.monotonic() + every)
            while self.open and time.monotonic() < round_ends:
                self._read(round_ends - time.monotonic())
        return time.monotonic() - started

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(max(0.01, timeout))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        if not data:
            self.open.clear()
            return
        for event in self.h2.receive_data(data):
            stream_id = getattr(event, "stream_id", 0)
            if isinstance(event, (ResponseReceived, TrailersReceived)):
                fields = dict(event.headers)
                if b"grpc-status" in fields:
                    self._status[stream_id] = (fields[b"grpc-status"], fields.get(b"grpc-message"))
            if isinstance(event, StreamEnded):
                self._end(stream_id, self._status.get(stream_id, ("no status", None)))
            elif isinstance(event, StreamReset):
                self._end(stream_id, ("reset", event.error_code))
        self._flush()

    def _end(self, stream_id: int, outcome: tuple) -> None:
        self.outcomes.setdefault(stream_id, outcome)
        if stream_id in self.open:
            self.open.remove(stream_id)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)


def _baseline(gateway) -> int:
    """RSS once HTTP/2 and the gRPC path have been used by one short call."""
    with GrpcTrickle(gateway.port) as warm:
        warm.start_calls("/test.Echo/Unary", 1)
        warm.trickle(every=0.2, seconds=0.5)
    for _ in range(5):
        with socket.create_connection((HOST, gateway.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: probe.test\r\nConnection: close\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
    time.sleep(0.3)
    return rss_kib(gateway.pid)


@pytest.fixture
def upstream():
    with RecordingUpstream(read_timeout=30.0) as server:
        yield server


def _config(attack_upstream: dict, probe_address: str, **limits) -> dict:
    return make_config(
        [attack_upstream, {"name": "probe", "endpoints": [{"address": probe_address}]}],
        [
            {"name": "probe", "match": {"host": "probe.test"}, "upstream": "probe"},
            {"name": "calls", "match": {"path_prefix": "/"}, "upstream": attack_upstream["name"]},
        ],
        # The body rules, short: a pause of 1 s, or under 100 B/s after 1 s, is too slow.
        listeners=[
            {
                "name": "public",
                "limits": {
                    "body_timeout": "1s",
                    "min_body_rate": 100,
                    "body_rate_grace": "1s",
                    **limits,
                },
            }
        ],
    )


def test_claiming_grpc_does_not_exempt_a_body_sent_to_an_http1_upstream(
    processes, tmp_path, upstream
):
    attack = {
        "name": "h1",
        "endpoints": [{"address": upstream.address}],
        "circuit": {"max_connections": 40, "max_requests": 1000},
    }
    gateway = processes.gateway(_config(attack, upstream.address, body_timeout="3s"), tmp_path)
    baseline = _baseline(gateway)
    calls = 30
    with GrpcTrickle(gateway.port) as attacker, Probe(gateway.port, interval=0.05) as probe:
        attacker.start_calls("/pkg.Service/Upload", calls)
        took = attacker.trickle(every=0.3, seconds=8.0)
    assert len(attacker.outcomes) == calls, attacker.outcomes
    # Too slow for the listener's pace rule (100 B/s after 1 s): each answered in gRPC's
    # form (408 -> 4). A test process starved for 3 s by a loaded machine would meet the
    # pause rule instead: the body rules hold either way.
    body_rules = {(b"4", b"request body too slow"), (b"4", b"client timeout")}
    assert set(attacker.outcomes.values()) <= body_rules, attacker.outcomes
    replies = gateway.local_replies("request_body_too_slow")
    assert replies + gateway.local_replies("client_timeout") == calls
    assert took < 5.0
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(gateway.pid, baseline)


def test_a_grpc_call_that_trickles_is_ended_by_the_upstreams_idle_timeout(
    processes, tmp_path, upstream
):
    port = free_port()
    grpc_server = processes.start(
        [PYTHON, str(GRPC_UPSTREAM), "--port", str(port)], "grpc-upstream"
    )
    wait_until(lambda: _listening(port), what="the grpc upstream to listen")
    attack = {
        "name": "grpc",
        "protocol": "h2",
        "endpoints": [{"address": f"{HOST}:{port}"}],
        "timeouts": {"idle": "2s"},
    }
    config = _config(attack, upstream.address, max_uploads_per_client=10)
    gateway = processes.gateway(config, tmp_path)
    baseline = _baseline(gateway)
    with GrpcTrickle(gateway.port) as attacker, Probe(gateway.port, interval=0.05) as probe:
        # ClientStream answers once the client's stream ends: the upstream stays silent.
        attacker.start_calls("/test.Echo/ClientStream", 20)
        took = attacker.trickle(every=0.3, seconds=8.0)
    outcomes = sorted(attacker.outcomes.values())
    # Ten calls at once from one address; the other ten: RESOURCE_EXHAUSTED (429).
    assert outcomes.count((b"8", b"client upload limit")) == 10, outcomes
    # Not the body rules (exempt), but the upstream's silence: DEADLINE_EXCEEDED at 2 s.
    assert outcomes.count((b"4", b"upstream timeout")) == 10, outcomes
    assert gateway.local_replies("request_body_too_slow") == 0
    assert gateway.local_replies("client_timeout") == 0
    assert 1.8 < took < 5.0
    assert probe.ratio >= 0.95, probe.summary()
    assert grpc_server.alive()
    wait_rss_within(gateway.pid, baseline)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False
