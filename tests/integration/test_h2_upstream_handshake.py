"""An HTTP/2 upstream that accepts the TCP connection but never sends its SETTINGS.

Dispa waits for the upstream's SETTINGS before it sends a request on a new connection
(they say how many streams it takes). An endpoint that never sends them (a process that
accepts but hangs, an HTTP/1.1 server that waits for a request line, a TLS-terminating
box with h2 turned off ...) is given ``timeouts.connect`` from the moment the connection
was up, then answered ``504 upstream_h2_handshake_timeout``: its own reason, counted as a
connect failure by retries and outlier detection, since no request was sent on it.

The endpoint here is a real listening socket in this process that accepts, reads, and
says nothing.
"""

from __future__ import annotations

import socket
import time

import pytest
from conftest import Processes, curl, http_get, make_config, wait_until
from test_h2_upstream import H2Upstream
from thread_server import ThreadServer

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REASON = "upstream_h2_handshake_timeout"


class SilentListener(ThreadServer):
    """Accepts connections and reads what comes; never writes a byte. Keeps what each
    connection sent and notes when the gateway closed it."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[bytearray] = []
        self.closed_at: dict[int, float] = {}
        self.accepted_at: list[float] = []
        self.start()

    @property
    def connections(self) -> int:
        with self.lock:
            return len(self.received)

    def on_accept(self, sock: socket.socket, number: int) -> None:
        self.received.append(bytearray())
        self.accepted_at.append(time.monotonic())

    def serve(self, sock: socket.socket, number: int) -> None:
        sock.settimeout(0.2)
        try:
            while not self._stopping.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                with self.lock:
                    self.received[number] += data
        except OSError:
            pass
        if not self._stopping.is_set():
            with self.lock:
                self.closed_at[number] = time.monotonic()


@pytest.fixture
def silent():
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


def h2_gateway(processes: Processes, workdir, endpoints: list[str], **upstream) -> object:
    config = make_config(
        [
            {
                "name": "app",
                "protocol": "h2",
                "endpoints": [{"address": address} for address in endpoints],
                "timeouts": {"connect": "500ms"},
                **upstream,
            }
        ],
        [{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    return processes.gateway(config, workdir)


def test_silent_h2_upstream_is_answered_504_upstream_h2_handshake_timeout(
    processes: Processes, tmp_path, silent: SilentListener
) -> None:
    gateway = h2_gateway(processes, tmp_path, [silent.address], retry={"attempts": 1})
    started = time.monotonic()
    status, body = http_get(gateway.url("/call"), timeout=10)
    elapsed = time.monotonic() - started
    assert (status, body) == (504, b"upstream h2 handshake timeout\n")
    # Bounded by timeouts.connect (500 ms) from the TCP accept, not by the 30 s response
    # timeout; a wide margin for a loaded machine.
    assert 0.4 <= elapsed < 5, elapsed
    assert gateway.local_replies(REASON) == 1
    assert gateway.local_replies("upstream_connect_failure") == 0
    assert gateway.local_replies("upstream_timeout") == 0
    # It was a real HTTP/2 attempt: the gateway sent its preface, got nothing back, and
    # closed the connection rather than leave it to the pool.
    assert silent.connections == 1
    with silent.lock:
        assert bytes(silent.received[0]).startswith(PREFACE)
    wait_until(lambda: 0 in silent.closed_at, timeout=5, what="the gateway to close it")
    assert "sent no HTTP/2 SETTINGS" in gateway.stderr()


def test_grpc_call_to_a_silent_upstream_is_unavailable(
    processes: Processes, tmp_path, silent: SilentListener
) -> None:
    """No request reached the upstream: UNAVAILABLE (a client may try again), not
    DEADLINE_EXCEEDED, which would say the client's own deadline passed."""
    gateway = h2_gateway(processes, tmp_path, [silent.address], retry={"attempts": 1})
    message = tmp_path / "message.bin"
    message.write_bytes(b"\x00\x00\x00\x00\x00")  # one empty gRPC message
    result = curl(
        "--http2-prior-knowledge",
        "-s",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        f"@{message}",
        gateway.url("/orders.v1.Orders/Get"),
    )
    assert result.returncode == 0, result.stderr
    head = result.stdout.decode().lower()
    assert head.startswith("http/2 200"), head
    assert "grpc-status: 14" in head, head
    assert "grpc-message: upstream h2 handshake timeout" in head, head
    assert gateway.local_replies(REASON) == 1


def test_a_silent_endpoint_is_a_connect_failure_for_retries_and_outlier_detection(
    processes: Processes, tmp_path, silent: SilentListener
) -> None:
    good = H2Upstream(processes, "h2-good")
    gateway = h2_gateway(
        processes,
        tmp_path,
        [silent.address, good.address],
        retry={"attempts": 2, "retry_on": ["connect_failure"]},
        outlier={"consecutive_failures": 2, "base_ejection": "30s"},
    )
    statuses = []
    for _ in range(6):
        statuses.append(http_get(gateway.url("/"), timeout=10)[0])
    # Every request answered by the good endpoint, the silent one's tries retried there.
    assert statuses == [200] * 6
    assert gateway.metric("dispa_retries_total", upstream="app") >= 1
    assert gateway.local_replies(REASON) == 0  # retried, never answered with it
    endpoints = gateway.endpoints("app")
    assert endpoints[silent.address]["ejected"] is True
    assert endpoints[good.address]["ejected"] is False
    tries = silent.connections
    for _ in range(3):
        assert http_get(gateway.url("/"), timeout=10)[0] == 200
    assert silent.connections == tries  # ejected: no more tries
