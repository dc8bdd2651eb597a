"""Tools of an attacker and of a witness, for the adversarial suite.

- ``RecordingUpstream``: a raw HTTP/1.1 upstream in a thread of the test process. It
  records every byte each connection sent it and answers each request with bytes a test
  scripts (trailers, 1xx, broken framing ...), so a test can check exactly what the
  gateway forwarded, and exactly what each client got back.
- ``Probe``: a well-behaved client that keeps asking the gateway for a page on fresh
  connections while an attack runs, and counts how many were answered in time.
- ``rss_kib`` / ``wait_rss_within``: the gateway's resident memory, before and after.
- ``exchange`` / ``read_until_closed``: one raw conversation over a socket.

Every loop here is bounded in count and time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from thread_server import ThreadServer

HOST = "127.0.0.1"

# (request head, request body, connection number, request number on it) -> bytes to send,
# or None to close the connection without answering.
Answer = Callable[[bytes, bytes, int, int], bytes | None]


def plain_answer(head: bytes, body: bytes, connection: int, index: int) -> bytes:
    payload = b"ok"
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload)


class RecordingUpstream(ThreadServer):
    """A raw upstream on 127.0.0.1 that records every byte and answers as scripted.

    ``received[n]`` holds every byte connection n sent; ``requests`` lists the heads of
    the requests in the order they came (the head bytes, up to and with the empty line).
    """

    def __init__(self, answer: Answer = plain_answer, *, read_timeout: float = 30.0) -> None:
        super().__init__(backlog=1024)
        self.answer = answer
        self.read_timeout = read_timeout
        self.received: list[bytearray] = []
        self.requests: list[bytes] = []
        self.bodies: list[bytes] = []

    @property
    def connections(self) -> int:
        with self.lock:
            return len(self.received)

    def on_accept(self, sock: socket.socket, number: int) -> None:
        self.received.append(bytearray())

    def serve(self, sock: socket.socket, number: int) -> None:
        sock.settimeout(self.read_timeout)
        buffer = bytearray()
        index = 0
        while not self._stopping.is_set():
            message = _read_request(sock, buffer, self.received[number], self.lock)
            if message is None:
                return
            head, body = message
            with self.lock:
                self.requests.append(head)
                self.bodies.append(body)
            reply = self.answer(head, body, number, index)
            index += 1
            if reply is None:
                return
            sock.sendall(reply)


def _read_more(sock: socket.socket, buffer: bytearray, record: bytearray, lock) -> bool:
    data = sock.recv(65536)
    if not data:
        return False
    buffer += data
    with lock:
        record += data
    return True


def _read_request(sock, buffer: bytearray, record: bytearray, lock) -> tuple[bytes, bytes] | None:
    """One request (head, body) off the connection: content-length or chunked framing."""
    while b"\r\n\r\n" not in buffer:
        if not _read_more(sock, buffer, record, lock):
            return None
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = bytearray()
        while True:
            while b"\r\n" not in buffer:
                if not _read_more(sock, buffer, record, lock):
                    return None
            line_end = buffer.index(b"\r\n")
            size = int(bytes(buffer[:line_end]).split(b";")[0].strip() or b"0", 16)
            del buffer[: line_end + 2]
            if size == 0:  # trailer section, up to the empty line
                while b"\r\n\r\n" not in b"\r\n" + buffer:
                    if not _read_more(sock, buffer, record, lock):
                        return None
                trailer_end = (b"\r\n" + buffer).index(b"\r\n\r\n") + 2
                del buffer[:trailer_end]
                return head, bytes(body)
            while len(buffer) < size + 2:
                if not _read_more(sock, buffer, record, lock):
                    return None
            body += buffer[:size]
            del buffer[: size + 2]
    length = 0
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1].strip())
    while len(buffer) < length:
        if not _read_more(sock, buffer, record, lock):
            return None
    body = bytes(buffer[:length])
    del buffer[:length]
    return head, body


class Probe:
    """A polite client asking for ``path`` on a fresh connection every ``interval`` while
    an attack runs; ``ratio`` is the share answered (any complete status line counts as
    answered if its status is in ``ok_statuses``) within ``timeout`` each."""

    def __init__(
        self,
        port: int,
        path: str = "/",
        *,
        host: str = "probe.test",
        interval: float = 0.05,
        timeout: float = 2.0,
        ok_statuses: tuple[int, ...] = (200,),
        max_probes: int = 2000,
    ) -> None:
        self.port = port
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        self.interval = interval
        self.timeout = timeout
        self.ok_statuses = ok_statuses
        self.max_probes = max_probes
        self.sent = 0
        self.answered = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    @property
    def ratio(self) -> float:
        return self.answered / self.sent if self.sent else 0.0

    def summary(self) -> str:
        shown = "; ".join(self.failures[:5])
        return f"{self.answered}/{self.sent} probes answered ({self.ratio:.1%}); {shown}"

    def _run(self) -> None:
        while not self._stop.is_set() and self.sent < self.max_probes:
            started = time.monotonic()
            self.sent += 1
            status = self._one()
            if status in self.ok_statuses:
                self.answered += 1
            else:
                self.failures.append(str(status))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _one(self) -> int | str:
        try:
            with socket.create_connection((HOST, self.port), timeout=self.timeout) as sock:
                sock.settimeout(self.timeout)
                sock.sendall(self.request)
                first = sock.recv(64)
                if not first.startswith(b"HTTP/1.1 "):
                    return f"bad answer {first!r}"
                return int(first[9:12])
        except (OSError, ValueError) as error:
            return type(error).__name__


def rss_kib(pid: int) -> int:
    """Resident memory of a process now (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS line in /proc/{pid}/status")


def wait_rss_within(pid: int, baseline_kib: int, *, factor: float = 1.2, timeout: float = 10.0):
    """Wait (bounded) until the process's RSS is within ``factor`` of its baseline; returns
    the last reading, and fails with both figures if it never got there."""
    deadline = time.monotonic() + timeout
    while True:
        now_kib = rss_kib(pid)
        if now_kib <= baseline_kib * factor:
            return now_kib
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"RSS {now_kib} KiB did not come back within {factor:.0%} of the baseline "
                f"{baseline_kib} KiB in {timeout}s"
            )
        time.sleep(0.2)


def exchange(port: int, data: bytes, *, timeout: float = 5.0, idle: float = 0.5) -> bytes:
    """Send ``data`` on a fresh connection and return everything read until the gateway
    closes it, or until nothing came for ``idle`` seconds (bounded by ``timeout``)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout=timeout, idle=idle)


def read_until_closed(sock: socket.socket, *, timeout: float = 5.0, idle: float = 0.5) -> bytes:
    deadline = time.monotonic() + timeout
    out = bytearray()
    while time.monotonic() < deadline:
        sock.settimeout(min(idle, max(0.01, deadline - time.monotonic())))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return bytes(out)
