"""What the HTTP/2 engine (http2/engine.py) reports: its events and its errors."""

from __future__ import annotations

STREAM_CLOSED = 0x5


class H2ProtocolError(Exception):
    """A connection error: GOAWAY with ``error_code`` is queued and the connection is over."""

    def __init__(self, error_code: int, message: str = "") -> None:
        super().__init__(message or f"HTTP/2 connection error {error_code}")
        self.error_code = error_code


class StreamClosedError(H2ProtocolError):
    """Sending on a stream that is closed to sending (ended, reset, or never opened)."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(STREAM_CLOSED, f"stream {stream_id} is closed")


class StreamError(Exception):
    """A stream error inside the engine: RST_STREAM with ``error_code``, the connection
    goes on."""

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


# ---------------------------------------------------------------- events


class RequestReceived:
    """A request's header block. ``cancelled``: the stream was reset later in the same
    read, before the application saw the request, so it is skipped (rapid reset)."""

    __slots__ = ("cancelled", "headers", "stream_ended", "stream_id")

    def __init__(self, stream_id: int, headers, stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = stream_ended
        self.cancelled = False


class HeadersTooLarge:
    """A request whose header list is over our SETTINGS_MAX_HEADER_LIST_SIZE: answer 431."""

    __slots__ = ("cancelled", "stream_ended", "stream_id")

    def __init__(self, stream_id: int, stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.stream_ended = stream_ended
        self.cancelled = False


class TrailersReceived:
    __slots__ = ("headers", "stream_id")

    def __init__(self, stream_id: int, headers) -> None:
        self.stream_id = stream_id
        self.headers = headers


class DataReceived:
    __slots__ = ("data", "flow_controlled_length", "stream_id")

    def __init__(self, stream_id: int, data: bytes, flow_controlled_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length


class StreamEnded:
    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset:
    __slots__ = ("error_code", "stream_id")

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


class WindowUpdated:
    __slots__ = ("delta", "stream_id")

    def __init__(self, stream_id: int, delta: int) -> None:
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged:
    __slots__ = ("changed",)

    def __init__(self, changed: dict) -> None:
        self.changed = changed


class ConnectionTerminated:
    __slots__ = ("error_code", "last_stream_id")

    def __init__(self, error_code: int, last_stream_id: int) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
