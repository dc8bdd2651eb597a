"""A raw HTTP/1.1 upstream whose every connection follows a script, for tests of framing
and interim responses: what bytes go out in which writes, with which pauses, and when the
upstream closes, all decided by the test.

``ScriptedUpstream(script)`` listens on 127.0.0.1 in a thread of the test process; each
accepted connection runs ``script(conversation)`` in its own thread, then is closed. The
``Conversation`` reads requests (heads and Content-Length or chunked bodies) and writes
bytes; ``requests`` lists every request head in arrival order with its connection number.
Every wait is bounded (socket timeouts); ``close()`` stops and joins every thread.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from thread_server import ThreadServer

HOST = "127.0.0.1"


class Conversation:
    """One upstream connection, as the script sees it."""

    def __init__(self, sock: socket.socket, number: int, upstream: ScriptedUpstream) -> None:
        self.sock = sock
        self.number = number  # 0 for the first connection accepted, 1 for the next ...
        self._upstream = upstream
        self._buffer = bytearray()

    def read_request(self, *, with_body: bool = True) -> tuple[bytes, bytes] | None:
        """The next request's head (up to and with its empty line) and body; None when
        the gateway closed the connection first. ``with_body=False`` leaves the body
        unread (to answer before it, as with Expect: 100-continue)."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._read_more():
                return None
        end = self._buffer.index(b"\r\n\r\n") + 4
        head = bytes(self._buffer[:end])
        del self._buffer[:end]
        with self._upstream.lock:
            self._upstream.requests.append((self.number, head))
        return head, self.read_body(head) if with_body else b""

    def read_body(self, head: bytes) -> bytes:
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            return self._read_chunked()
        length = 0
        for line in lower.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(self._buffer) < length:
            if not self._read_more():
                break
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            while b"\r\n" not in self._buffer:
                if not self._read_more():
                    return bytes(body)
            line_end = self._buffer.index(b"\r\n")
            size = int(bytes(self._buffer[:line_end]).split(b";")[0] or b"0", 16)
            del self._buffer[: line_end + 2]
            if size == 0:
                while b"\r\n\r\n" not in b"\r\n" + self._buffer:
                    if not self._read_more():
                        return bytes(body)
                del self._buffer[: (b"\r\n" + self._buffer).index(b"\r\n\r\n") + 2]
                return bytes(body)
            while len(self._buffer) < size + 2:
                if not self._read_more():
                    return bytes(body)
            body += self._buffer[:size]
            del self._buffer[: size + 2]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed_by_peer(self, timeout: float) -> bool:
        """True if the gateway closed this connection within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    def _read_more(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return False
        if not data:
            return False
        self._buffer += data
        return True


Script = Callable[[Conversation], None]


class ScriptedUpstream(ThreadServer):
    def __init__(self, script: Script, *, timeout: float = 10.0) -> None:
        super().__init__()
        self.script = script
        self.timeout = timeout
        self.requests: list[tuple[int, bytes]] = []  # (connection number, head)
        self.errors: list[BaseException] = []  # what a script raised, for the test to see

    @property
    def connections(self) -> int:
        with self.lock:
            return self.accepted

    def connection_of(self, index: int) -> int:
        """The connection number that carried request number ``index``."""
        with self.lock:
            return self.requests[index][0]

    def serve(self, sock: socket.socket, number: int) -> None:
        sock.settimeout(self.timeout)
        try:
            self.script(Conversation(sock, number, self))
        except OSError:
            pass  # the gateway or the test closed the connection: the script ends
        except BaseException as error:  # handed to the test, not lost in a thread
            with self.lock:
                self.errors.append(error)


def serve_each(answer: Callable[[bytes, bytes, Conversation], bool]) -> Script:
    """A script that reads requests one after another and calls ``answer(head, body,
    conversation)`` for each; the connection ends when it returns False."""

    def script(conversation: Conversation) -> None:
        while True:
            request = conversation.read_request()
            if request is None:
                return
            if not answer(*request, conversation):
                return

    return script
