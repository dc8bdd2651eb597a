"""A raw TCP server in threads of the test process, for upstreams that tests script byte
by byte (what Dispa must survive cannot come from a well-behaved server).

``ThreadServer`` listens on 127.0.0.1 and runs ``serve(sock, number)`` for each accepted
connection in a thread of its own, then closes it; ``number`` counts connections from 0.
``close()`` stops accepting, shuts every connection down (which wakes a thread blocked in
``recv``; close alone does not) and joins every thread, each wait bounded.
"""

from __future__ import annotations

import contextlib
import socket
import threading

HOST = "127.0.0.1"


class ThreadServer:
    def __init__(self, *, backlog: int = 128) -> None:
        self.lock = threading.Lock()
        self.accepted = 0
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((HOST, 0))
        self._server.listen(backlog)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self.address = f"{HOST}:{self.port}"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._acceptor.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def serve(self, sock: socket.socket, number: int) -> None:
        raise NotImplementedError

    def on_accept(self, sock: socket.socket, number: int) -> None:
        """Called under ``lock`` as a connection is accepted, before its thread starts."""

    def close(self) -> None:
        self._stopping.set()
        if self._started:
            self._acceptor.join(timeout=5)
        self._server.close()
        with self.lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                number = self.accepted
                self.accepted += 1
                self._sockets.append(sock)
                self.on_accept(sock, number)
            thread = threading.Thread(target=self._serve_then_close, args=(sock, number))
            thread.daemon = True
            self._threads.append(thread)
            thread.start()

    def _serve_then_close(self, sock: socket.socket, number: int) -> None:
        try:
            self.serve(sock, number)
        except OSError:
            pass  # the gateway or the test closed the connection
        finally:
            with contextlib.suppress(OSError):
                sock.close()
