"""A raw HTTP/1.1 origin in a thread of the test process, for cache conformance tests.

Each request is answered with the status and the header lines a test scripted for its
method and target, written byte for byte (so a test can send what no server library
would: a folded field, a field twice, a date in a wrong form). The body names the request
and counts the answers given for it: ``"GET /c/a #2"``. Unscripted requests get 200 with
``Cache-Control: max-age=60``.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Iterable

HOST = "127.0.0.1"
READ_TIMEOUT = 10.0
MAX_HEAD = 64 * 1024
DEFAULT_HEAD = (b"Cache-Control: max-age=60",)


class ScriptedOrigin:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.scripts: dict[tuple[str, str], tuple[int, tuple[bytes, ...]]] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        origin = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                origin._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = f"{HOST}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedOrigin:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def script(self, method: str, target: str, status: int, head: Iterable[bytes]) -> None:
        """Answer ``method target`` with ``status`` and these raw header lines (no CRLF)."""
        with self.lock:
            self.scripts[(method, target)] = (status, tuple(head))

    def count(self, method: str, target: str) -> int:
        with self.lock:
            return self.counts[(method, target)]

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(READ_TIMEOUT)
        buffer = b""
        with contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data or len(buffer) > MAX_HEAD:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target, _ = lines[0].decode("latin-1").split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(buffer) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                buffer = buffer[length:]
                sock.sendall(self._answer(method, target))

    def _answer(self, method: str, target: str) -> bytes:
        with self.lock:
            self.counts[(method, target)] += 1
            count = self.counts[(method, target)]
            status, head = self.scripts.get((method, target), (200, DEFAULT_HEAD))
        body = b"" if status in (204, 304) else f"{method} {target} #{count}\n".encode()
        lines = [f"HTTP/1.1 {status} Scripted".encode(), *head]
        if status not in (204, 304):
            lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body
