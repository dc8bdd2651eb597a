"""Protocol events: what a parser turns bytes into, the same for HTTP/1.1 and HTTP/2.

Everything above the parsers (router, filters, forwarding) reads these and nothing else.
They are NamedTuples: immutable and cheap to build, which matters on the hot path.
Header names keep the case they arrived with; ``Headers`` is a list of (name, value) bytes.
"""

from __future__ import annotations

from typing import NamedTuple

Headers = list[tuple[bytes, bytes]]


class RepeatedHeaders(list):
    """The header list of a head that arrives again and again: one list shared by every
    message with those bytes (http1/parser.py), and so never edited in place (nothing is:
    filters replace headers). It remembers what the head writer made of it, so a head
    seen before is written without reading its fields again (http1/writer.py)."""

    __slots__ = ("request_fields", "request_starts", "response_fields", "response_starts")

    def __init__(self, fields) -> None:
        super().__init__(fields)
        self.request_fields = None
        self.response_fields = None
        self.request_starts: dict = {}
        self.response_starts: dict = {}


class Request(NamedTuple):
    stream_id: int
    method: str
    # The target in origin-form, normalised once by the parser (request_target.py): what
    # routing, filters, the cache key and the upstream all see.
    target: bytes  # path and query
    path: str  # the normalised path without the query
    query: bytes  # with its leading '?', or b""
    host: str  # lower-cased, port removed; "" when absent
    headers: Headers
    http_version: str
    keep_alive: bool
    has_body: bool
    content_length: int | None  # None when chunked or absent
    # Read off the headers in the parser's one pass, so nothing later scans them again.
    host_header: bytes | None = None  # the Host header as sent, port included
    request_id: bytes | None = None  # the client's X-Request-Id, if any
    expect_continue: bool = False  # "Expect: 100-continue"
    # b"websocket" when an HTTP/1.1 GET asks to upgrade to a WebSocket (RFC 6455 4.1): the
    # only upgrade that is forwarded; every other offer is ignored (RFC 9110 7.8).
    upgrade: bytes | None = None


class Response(NamedTuple):
    stream_id: int
    status: int
    reason: bytes
    headers: Headers
    http_version: str
    keep_alive: bool
    content_length: int | None  # None when chunked or close-delimited


class InterimResponse(NamedTuple):
    """A 1xx head before the final response (100, 102, 103 ...; a 101 is a Response: it
    ends HTTP on the connection). It has no body and is never a final answer."""

    stream_id: int
    status: int
    reason: bytes
    headers: Headers


class Data(NamedTuple):
    stream_id: int
    data: bytes


class EndOfMessage(NamedTuple):
    stream_id: int


class Trailers(NamedTuple):
    stream_id: int
    headers: Headers


class StreamReset(NamedTuple):
    stream_id: int
    reason: str


Event = Request | Response | InterimResponse | Data | EndOfMessage | Trailers | StreamReset


def header_value(headers: Headers, lower_name: bytes) -> bytes | None:
    """First value of a header, by lower-case name."""
    for name, value in headers:
        if name.lower() == lower_name:
            return value
    return None
