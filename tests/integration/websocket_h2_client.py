"""An RFC 8441 WebSocket-over-HTTP/2 client for the tests: the h2 library (a real HTTP/2
implementation) makes the HTTP/2 frames over a real socket; a tiny encoder here makes the
WebSocket frames inside the stream (RFC 6455 5.2)."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from support import HOST

MIB = 1024 * 1024
WAIT = 10.0  # the bound on every wait in these tests
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


# ---------------------------------------------------------------- WebSocket frames


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame of any size (RFC 6455 5.2)."""
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    # XOR as one big integer: masking megabytes byte by byte in Python would take seconds.
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return head + mask + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def take_frame(buffer: bytearray) -> tuple[bool, int, bytes] | None:
    """One unmasked server frame off the front of ``buffer``: (fin, opcode, payload)."""
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    assert not second & 0x80, "a server never masks its frames"
    length, offset = second & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        (length,), offset = struct.unpack("!H", buffer[2:4]), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        (length,), offset = struct.unpack("!Q", buffer[2:10]), 10
    if len(buffer) < offset + length:
        return None
    payload = bytes(buffer[offset : offset + length])
    del buffer[: offset + length]
    return bool(first & 0x80), first & 0x0F, payload


# ---------------------------------------------------------------- the RFC 8441 client


class WebSocketOverH2:
    """One WebSocket on one HTTP/2 stream: h2 makes the frames, we move the bytes."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, server_name: str = "") -> None:
        self.sock = socket.create_connection((HOST, port), timeout=WAIT)
        if tls is not None:
            # HTTP/2 over TLS is chosen by ALPN; a gateway that picked anything else fails here.
            tls.set_alpn_protocols(["h2"])
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_name)
            assert self.sock.selected_alpn_protocol() == "h2"
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.server_settings: dict[int, int] = {}
        self.stream_id = 0
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.inbound = bytearray()  # WebSocket bytes the stream brought, not yet parsed
        self.acknowledge = True
        self.unacknowledged = 0
        self.ended = False
        self.reset_code: int | None = None
        self.goaway = False
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def open(
        self,
        path: str = "/ws",
        *,
        protocols: str | None = "echo",
        scheme: bytes = b"http",
        request_id: str | None = None,
    ) -> int:
        """Send the extended CONNECT (with ``x-request-id`` when given, to find its access
        log record); the status it was answered with."""
        self.read_until(lambda: self.server_settings)
        self.stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", scheme),
            (b":path", path.encode()),
            (b":authority", b"ws.test"),
            (b"sec-websocket-version", b"13"),
        ]
        if protocols:
            headers.append((b"sec-websocket-protocol", protocols.encode()))
        if request_id:
            headers.append((b"x-request-id", request_id.encode()))
        self.h2.send_headers(self.stream_id, headers)
        self.flush()
        self.read_until(lambda: self.status or self.ended or self.reset_code is not None)
        return self.status

    def send(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send within the flow-control windows, reading (and so taking the echo) while
        they are closed: the gateway must not need the whole message first."""
        view = memoryview(data)
        deadline = time.monotonic() + WAIT
        while view:
            window = min(
                self.h2.local_flow_control_window(self.stream_id), self.h2.max_outbound_frame_size
            )
            if window <= 0:
                if time.monotonic() > deadline:
                    raise AssertionError("the gateway never opened its window")
                self.read_some(deadline)
                continue
            self.h2.send_data(self.stream_id, bytes(view[:window]))
            self.flush()
            view = view[window:]
        if end_stream:
            self.h2.end_stream(self.stream_id)
            self.flush()

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        self.send(client_frame(opcode, payload, fin=fin))

    def receive_frame(self, timeout: float = WAIT) -> tuple[bool, int, bytes]:
        found: list = []

        def frame_arrived() -> bool:
            frame = take_frame(self.inbound)
            if frame is not None:
                found.append(frame)
            return bool(found)

        self.read_until(frame_arrived, timeout)
        return found[0]

    def receive_message(self) -> tuple[int, bytes]:
        """A whole message: control frames come as they are, fragments are joined."""
        fin, opcode, payload = self.receive_frame()
        pieces = [payload]
        while not fin:
            fin, continued, payload = self.receive_frame()
            assert continued == CONTINUATION
            pieces.append(payload)
        return opcode, b"".join(pieces)

    def read_until(self, predicate, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.closed:
                raise AssertionError("the gateway closed the connection")
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for frames")
            self.read_some(deadline)

    def read_some(self, deadline: float) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(256 * 1024)
        except TimeoutError:
            return  # the caller decides whether it waited long enough
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            self._handle(event)
        self.flush()

    def _handle(self, event) -> None:
        kind = type(event)
        if kind is RemoteSettingsChanged:
            for code, setting in event.changed_settings.items():
                self.server_settings[code] = setting.new_value
        elif kind is ResponseReceived:
            self.headers = dict(event.headers)
            self.status = int(self.headers[b":status"])
        elif kind is DataReceived:
            self.inbound += event.data
            self.unacknowledged += event.flow_controlled_length
            if self.acknowledge:
                self.give_window()
        elif kind is StreamEnded:
            self.ended = True
        elif kind is StreamReset:
            self.reset_code = event.error_code
        elif kind is ConnectionTerminated:
            self.goaway = True
            # Streams up to the GOAWAY's last stream id still finish (RFC 9113 6.8).
            self.h2.state_machine.state = ConnectionState.CLIENT_OPEN

    def give_window(self) -> None:
        if self.unacknowledged:
            self.h2.acknowledge_received_data(self.unacknowledged, self.stream_id)
            self.unacknowledged = 0

    def close(self) -> None:
        self.sock.close()
