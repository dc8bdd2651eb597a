"""Slow POST: clients that send their bodies a byte at a time must not take the upstream's
connections from everyone else.

The attackers connect from 127.0.0.2 (any 127/8 address is loopback), the probe from
127.0.0.1, so the per-client limits are seen to single out the attacker. The upstream's
circuit allows 40 connections; 60 attackers would take them all if each held one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from conftest import HOST, make_config
from harness import Probe, RecordingUpstream, rss_kib, wait_rss_within

ATTACKER = "127.0.0.2"
ATTACKERS = 60


def _gateway_config(upstream_address: str, **limits) -> dict:
    return make_config(
        [
            {
                "name": "u",
                "endpoints": [{"address": upstream_address}],
                "circuit": {"max_connections": 40, "max_requests": 1000},
            }
        ],
        [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "u"}],
        listeners=[
            {
                "name": "public",
                "limits": {"min_body_rate": 100, "body_rate_grace": "2s", **limits},
            }
        ],
    )


class SlowUploads:
    """``count`` clients from ATTACKER, each declaring ``length`` body bytes and sending one
    byte every ``every`` seconds, for at most ``duration`` seconds. ``outcomes`` holds the
    first bytes each got back (b"" if the gateway closed without answering)."""

    def __init__(self, port: int, count: int, length: int, every: float, duration: float):
        self.port = port
        self.count = count
        self.length = length
        self.every = every
        self.duration = duration
        self.outcomes: list[bytes] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._one, daemon=True) for _ in range(count)]

    def __enter__(self) -> SlowUploads:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for thread in self.threads:
            thread.join(timeout=self.duration + 10)

    def _one(self) -> None:
        answer = b""
        sock = socket.socket()
        try:
            sock.bind((ATTACKER, 0))
            sock.settimeout(5)
            sock.connect((HOST, self.port))
            sock.sendall(
                b"POST /upload HTTP/1.1\r\nHost: victim.test\r\nContent-Length: %d\r\n\r\n"
                % self.length
            )
            ends = time.monotonic() + self.duration
            sock.settimeout(self.every)
            while time.monotonic() < ends:
                try:
                    answer = sock.recv(200)
                    break  # answered (or closed: b"")
                except TimeoutError:
                    pass
                try:
                    sock.sendall(b"x")
                except OSError:
                    break
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self.lock:
                self.outcomes.append(answer)


def _baseline(gateway) -> int:
    """RSS once the body path has been used by a few honest uploads."""
    for index in range(5):
        with socket.create_connection((HOST, gateway.port), timeout=5) as sock:
            sock.sendall(
                b"POST /warm%d HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" % index
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
    time.sleep(0.3)
    return rss_kib(gateway.pid)


@pytest.fixture
def upstream():
    with RecordingUpstream(read_timeout=30.0) as server:
        yield server


def test_small_slow_bodies_never_reach_the_upstream(processes, tmp_path, upstream):
    gateway = processes.gateway(_gateway_config(upstream.address), tmp_path)
    baseline = _baseline(gateway)
    warm_connections = upstream.connections
    with (
        SlowUploads(gateway.port, ATTACKERS, length=1000, every=0.5, duration=5.0) as attack,
        Probe(gateway.port, interval=0.05) as probe,
    ):
        time.sleep(1.0)  # the attack is in full swing
        # Small declared bodies are read whole before an upstream is picked: none of the
        # attackers holds an upstream connection.
        assert upstream.connections - warm_connections <= 2, upstream.connections
        time.sleep(2.5)  # past the 2 s grace: every attacker has been judged
    assert probe.ratio >= 0.95, probe.summary()
    assert len(attack.outcomes) == ATTACKERS
    # Too slow past the grace period: each was answered 408 (request body too slow).
    assert sum(o.startswith(b"HTTP/1.1 408") for o in attack.outcomes) == ATTACKERS, (
        attack.outcomes[:3]
    )
    assert gateway.local_replies("request_body_too_slow") == ATTACKERS
    assert not any(b"/upload" in head for head in upstream.requests)
    wait_rss_within(gateway.pid, baseline)


def test_large_slow_bodies_are_capped_per_client_and_cut_when_too_slow(
    processes, tmp_path, upstream
):
    config = _gateway_config(upstream.address, max_uploads_per_client=10)
    gateway = processes.gateway(config, tmp_path)
    baseline = _baseline(gateway)
    warm_connections = upstream.connections
    with (
        SlowUploads(gateway.port, ATTACKERS, length=10_000_000, every=0.5, duration=5.0) as attack,
        Probe(gateway.port, interval=0.05) as probe,
    ):
        time.sleep(1.0)
        # Bodies too large to hold are streamed, but one address gets 10 such uploads at a
        # time: the other 50 attackers were answered 429 at once.
        assert upstream.connections - warm_connections <= 10 + 2, upstream.connections
        time.sleep(2.5)
    assert probe.ratio >= 0.95, probe.summary()
    statuses = sorted(o[9:12] for o in attack.outcomes)
    assert statuses.count(b"429") == ATTACKERS - 10, statuses
    # The 10 that were let through were cut for being too slow (408 before the upstream
    # answered, since the upstream waits for the whole body).
    assert statuses.count(b"408") == 10, statuses
    # Nothing is left holding the upstream: a normal upload goes through at once.
    with socket.create_connection((HOST, gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /after HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    wait_rss_within(gateway.pid, baseline)


def test_slow_bodies_on_http2_streams_are_cut_too(processes, tmp_path, upstream):
    from test_h2_floods import DATA, END_HEADERS, HEADERS, H2Attacker, frame
    from test_h2_floods import _baseline as h2_baseline

    gateway = processes.gateway(_gateway_config(upstream.address), tmp_path)
    baseline = h2_baseline(gateway)
    streams = list(range(1, 41, 2))  # 20 streams on one connection
    with H2Attacker(gateway.port) as attacker, Probe(gateway.port, interval=0.05) as probe:
        for stream_id in streams:
            block = attacker.request_block("/upload", "POST", extra=[("content-length", "1000")])
            attacker.send(frame(HEADERS, END_HEADERS, stream_id, block))
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            answered = attacker.headers_seen | set(attacker.resets)
            if all(stream_id in answered for stream_id in streams):
                break
            for stream_id in streams:
                attacker.send(frame(DATA, 0, stream_id, b"x"))
            time.sleep(0.5)
    answered = attacker.headers_seen | set(attacker.resets)
    assert all(stream_id in answered for stream_id in streams), (answered, streams)
    assert gateway.local_replies("request_body_too_slow") == len(streams)
    assert probe.ratio >= 0.95, probe.summary()
    assert not any(b"/upload" in head for head in upstream.requests)
    wait_rss_within(gateway.pid, baseline)
