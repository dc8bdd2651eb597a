"""An HTTP/2 upstream that floods the gateway with frames it must answer, and never reads
the answers: the gateway drops that connection instead of holding the answers."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import pytest
from conftest import HOST, make_config
from harness import Probe, rss_kib, wait_rss_within

SETTINGS, PING = 0x4, 0x6
ACK = 0x1


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes((kind, flags))
    return head + struct.pack(">I", stream_id) + payload


class PingFloodUpstream:
    """An h2c "server" that reads the client's preface, then sends PING frames for as long
    as the gateway takes them, and never reads again. ``cut_off`` is set once a send fails
    (the gateway closed or reset the connection)."""

    def __init__(self, seconds: float = 8.0) -> None:
        self.seconds = seconds
        self.cut_off = threading.Event()
        self.connections = 0
        self._server = socket.socket()
        # A small receive buffer (inherited by accepted sockets): what it does not read
        # piles up at the gateway soon, not in this kernel.
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._server.bind((HOST, 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.address = f"{HOST}:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PingFloodUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.seconds + 5)
        self._server.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with sock:
                self._flood(sock)

    def _flood(self, sock: socket.socket) -> None:
        sock.settimeout(2)
        with contextlib.suppress(OSError):
            sock.recv(65536)  # the client's preface and SETTINGS: never read again
        pings = frame(PING, 0, 0, b"12345678") * 4096
        deadline = time.monotonic() + self.seconds
        sock.settimeout(0.5)
        try:
            sock.sendall(frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
            while time.monotonic() < deadline and not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    sock.sendall(pings)
        except OSError:
            self.cut_off.set()


@pytest.fixture
def hostile(processes, tmp_path):
    probe_upstream = processes.demo_upstream("h2-upstream-flood-probe")
    with PingFloodUpstream() as upstream:
        config = make_config(
            [
                {"name": "probe", "endpoints": [{"address": probe_upstream.address}]},
                {
                    "name": "hostile",
                    "protocol": "h2",
                    "endpoints": [{"address": upstream.address}],
                    "timeouts": {"response": "15s"},
                },
            ],
            [
                {"name": "probe", "match": {"host": "probe.test"}, "upstream": "probe"},
                {"name": "all", "match": {"path_prefix": "/"}, "upstream": "hostile"},
            ],
        )
        yield processes.gateway(config, tmp_path), upstream


def test_an_upstream_ping_flood_without_reading_is_cut_off(hostile):
    gateway, upstream = hostile
    for _ in range(3):
        assert _get_status(gateway.port, "/", host="probe.test") == 200
    baseline = rss_kib(gateway.pid)
    peak = baseline
    with Probe(gateway.port) as probe:
        answer: list = []
        client = threading.Thread(
            target=lambda: answer.append(_get_status(gateway.port, "/hostile")), daemon=True
        )
        client.start()  # makes the gateway open its connection to the hostile upstream
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not upstream.cut_off.is_set():
            peak = max(peak, rss_kib(gateway.pid))
            time.sleep(0.1)
        client.join(timeout=10)
    assert upstream.cut_off.is_set(), "the gateway kept answering an upstream that never reads"
    # Cut off, it counts as a failed try (retried once, on a new connection flooded the
    # same way): the client gets a 502, without waiting for its response timeout.
    assert answer == [502], answer
    assert upstream.connections <= 3, "a connection dropped as it opened was opened again"
    assert peak - baseline < 32 * 1024, f"RSS grew by {peak - baseline} KiB"
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(gateway.pid, baseline)


def _get_status(port: int, path: str, host: str = "a.test") -> int | str:
    try:
        with socket.create_connection((HOST, port), timeout=25) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            first = sock.recv(64)
            return int(first[9:12]) if first.startswith(b"HTTP/1.1 ") else repr(first)
    except OSError as error:
        return type(error).__name__
