"""The slow-POST rules: a body's pace, and uploads in flight per client address."""

from __future__ import annotations

from types import SimpleNamespace

import uvloop
from memory_transport import Transport

from dispa.config.load import load_text
from dispa.proxy.body_pace import NO_DEADLINE, UploadsByClient, paced_deadline
from dispa.proxy.http1 import server as h1_server
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.server import Gateway

LIMITS = SimpleNamespace(min_body_rate=500, body_rate_grace=20.0)


def test_the_allowance_is_the_grace_plus_a_second_per_rate_bytes():
    assert paced_deadline(100.0, 0, LIMITS) == 120.0
    assert paced_deadline(100.0, 5000, LIMITS) == 130.0
    off = SimpleNamespace(min_body_rate=0, body_rate_grace=20.0)
    assert paced_deadline(100.0, 0, off) == NO_DEADLINE


def test_a_client_keeping_the_pace_never_reaches_its_deadline():
    # 600 bytes a second for a minute: always ahead of 500 B/s after the grace.
    for second in range(60):
        assert paced_deadline(0.0, 600 * second, LIMITS) > second


def test_uploads_per_client_are_capped_and_given_back():
    uploads = UploadsByClient()
    assert all(uploads.try_start("10.0.0.1", 3) for _ in range(3))
    assert not uploads.try_start("10.0.0.1", 3)
    assert uploads.try_start("10.0.0.2", 3)  # another address has its own count
    uploads.finish("10.0.0.1")
    assert uploads.try_start("10.0.0.1", 3)
    for _ in range(3):
        uploads.finish("10.0.0.1")
    assert uploads.count("10.0.0.1") == 0
    assert uploads.try_start("10.0.0.3", 0)  # 0: no limit


CONFIG = """
listeners:
  - name: public
    address: "127.0.0.1:0"
    limits: {min_body_rate: 100, body_rate_grace: 2s, body_timeout: 60s}
upstreams: [{name: app, endpoints: [{address: "127.0.0.1:9"}]}]
routes: [{match: {host: "*", path_prefix: /}, upstream: app}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
"""


async def _paced(monkeypatch, paused_for: float) -> bytes:
    """A client sends 100 of its 1000 body bytes, then the gateway holds it back for
    ``paused_for`` seconds (as it does for a slow upstream); 3 s after the start the
    body's pace is judged."""
    clock = [1000.0]
    monkeypatch.setattr(h1_server.time, "monotonic", lambda: clock[0])
    gateway = Gateway()
    await gateway.apply(load_text(CONFIG))
    gateway.now = clock[0]
    client = H1ServerConnection(gateway, next(iter(gateway.listeners.values())).config)
    transport = Transport()
    client.connection_made(transport)
    client.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
    client.pause_reading("upstream")
    clock[0] += paused_for
    client.resume_reading("upstream")
    clock[0] = 1003.0
    gateway.now = clock[0]
    client.check_deadlines(clock[0])
    return b"".join(transport.writes)


def test_a_body_too_slow_after_the_grace_is_answered_408(monkeypatch):
    sent = uvloop.run(_paced(monkeypatch, paused_for=0.0))
    assert sent.startswith(b"HTTP/1.1 408"), sent
    assert b"request body too slow" in sent


def test_time_the_gateway_held_the_client_back_is_not_counted(monkeypatch):
    sent = uvloop.run(_paced(monkeypatch, paused_for=2.5))
    assert sent == b"", sent  # 3 s less 2.5 s held back: within the 2 s grace + 1 s
