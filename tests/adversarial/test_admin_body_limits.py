"""What an unauthenticated peer can make a core's admin API hold in memory is capped: each
route takes a body of at most its own size (64 KiB for small JSON commands), and all the
bodies being read at once share one budget (16 MiB), whatever the number of connections. Other
clients keep being answered and memory comes back afterwards."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from cluster.conftest import Cluster
from harness import Probe, rss_kib, wait_rss_within

CONNECTIONS = 120
DECLARED = 1024 * 1024  # each attacker declares a 1 MiB body and sends all but one byte
HOLD = 4.0  # seconds the attack holds its connections open


@pytest.fixture
def core(tmp_path) -> Iterator:
    cluster = Cluster(tmp_path / "cluster", count=1)
    try:
        cluster.start()
        yield cluster.cores[0]
    finally:
        cluster.stop_all()


def _stalled_uploads(address: str, path: str) -> tuple[list[socket.socket], list[bytes]]:
    """Open the connections, send the heads and nearly all the bodies, then stall."""
    host, _, port = address.rpartition(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {DECLARED}\r\n\r\n"
    ).encode()
    chunk = b" " * (DECLARED - 1)
    sockets, early = [], []
    for _ in range(CONNECTIONS):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.settimeout(0.5)
        sockets.append(sock)
        try:
            sock.sendall(head)
            sock.sendall(chunk)
        except OSError:
            pass  # the server already answered and closed: that is a refusal
    time.sleep(1.0)  # refusals come at once; a body being read gets no answer yet
    for sock in sockets:
        try:
            early.append(sock.recv(64, socket.MSG_DONTWAIT))
        except OSError:
            early.append(b"")
    return sockets, early


@pytest.mark.parametrize(
    ("path", "at_least_refused"),
    [
        ("/api/v1/config/rollback", CONNECTIONS),  # 64 KiB at most: refused from the length
        ("/api/v1/restore", CONNECTIONS - 20),  # 1 MiB fits, until 16 MiB are in flight
    ],
)
def test_stalled_uploads_on_many_connections_hold_a_bounded_amount(
    core, path: str, at_least_refused: int
) -> None:
    pid = core.popen.pid
    port = int(core.admin_address.rpartition(":")[2])
    baseline = rss_kib(pid)
    peak = baseline
    with Probe(port, "/healthz", host=core.admin_address, interval=0.05) as probe:
        sockets, early = _stalled_uploads(core.admin_address, path)
        try:
            deadline = time.monotonic() + HOLD
            while time.monotonic() < deadline:
                peak = max(peak, rss_kib(pid))
                time.sleep(0.1)
        finally:
            for sock in sockets:
                sock.close()
    refused = sum(1 for answer in early if answer.startswith((b"HTTP/1.1 413", b"HTTP/1.1 503")))
    assert refused >= at_least_refused, (refused, early[:3])
    # Bodies being read share a 16 MiB budget; 120 connections x 1 MiB would be 120 MiB.
    assert peak - baseline < 40 * 1024, f"RSS grew from {baseline} to {peak} KiB"
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(pid, baseline, factor=1.2, timeout=15)
