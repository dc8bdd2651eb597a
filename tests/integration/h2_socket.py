"""An HTTP/2 client over a blocking socket, for tests that need frame-level control: h2
makes the frames, the test moves the bytes."""

from __future__ import annotations

import socket
import time

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.settings import SettingCodes

HOST = "127.0.0.1"
MIB = 1024 * 1024


class H2Socket:
    """An HTTP/2 client over a blocking socket: h2 makes the frames, we move the bytes."""

    def __init__(self, port: int, window: int | None = None, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        if window is not None:
            # A small window per stream; the connection's stays wide, so a stalled stream
            # holds back only itself.
            self.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window})
            self.h2.increment_flow_control_window(64 * MIB)
        self.auto_acknowledge = True
        self.status: dict[int, int] = {}
        self.bodies: dict[int, bytearray] = {}
        self.ended: dict[int, float] = {}  # stream id -> when it ended
        self.resets: dict[int, int] = {}
        self.goaway: ConnectionTerminated | None = None
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"h2.test"),
        ]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self.flush()
        return stream_id

    def read_until(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.closed:
                raise AssertionError("the gateway closed the connection")
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for frames")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(256 * 1024)
            except TimeoutError:
                continue
            if not data:
                self.closed = True
                continue
            self._handle(self.h2.receive_data(data))
            self.flush()

    def _handle(self, events) -> None:
        for event in events:
            kind = type(event)
            if kind is ResponseReceived:
                self.status[event.stream_id] = int(dict(event.headers)[b":status"])
            elif kind is DataReceived:
                self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                if self.auto_acknowledge:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is StreamEnded:
                self.ended[event.stream_id] = time.monotonic()
            elif kind is StreamReset:
                self.resets[event.stream_id] = event.error_code
            elif kind is ConnectionTerminated:
                self.goaway = event
                # h2 would take no frame after a GOAWAY, but the streams up to its last
                # stream id still finish (RFC 9113 6.8): keep its state machine open.
                self.h2.state_machine.state = ConnectionState.CLIENT_OPEN

    def reset(self, stream_id: int, code: int = ErrorCodes.CANCEL) -> None:
        self.h2.reset_stream(stream_id, code)
        self.flush()

    def close(self) -> None:
        self.sock.close()
