"""gRPC status for the replies Dispa makes itself: pure functions, no I/O.

A gRPC client reads the outcome of a call from ``grpc-status`` and ``grpc-message``, not
from the HTTP status, so when the request is gRPC a local reply (no route, no healthy
endpoint, a timeout, a rate limit ...) becomes a *trailers-only* response: HTTP 200,
``content-type: application/grpc`` and the status fields, with no body ("gRPC over HTTP2",
Responses). The mapping follows the HTTP-to-gRPC table of grpc/doc/http-grpc-status-mapping.md,
refined where Dispa knows the cause better than the status says (see ``_BY_REASON``).
"""

from __future__ import annotations

from dispa.proxy import local_reply as reasons
from dispa.proxy.local_reply import LocalReply

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

GRPC_CONTENT_TYPE = b"application/grpc"

# http-grpc-status-mapping.md, with what a gateway adds: 408/504 are deadlines, 413/431
# and 429 are limits (RESOURCE_EXHAUSTED, as a gRPC server says of a message too large),
# 500 is INTERNAL, 501 UNIMPLEMENTED.
_BY_STATUS = {
    400: INTERNAL,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: UNIMPLEMENTED,
    408: DEADLINE_EXCEEDED,
    413: RESOURCE_EXHAUSTED,
    429: RESOURCE_EXHAUSTED,
    431: RESOURCE_EXHAUSTED,
    500: INTERNAL,
    501: UNIMPLEMENTED,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: DEADLINE_EXCEEDED,
}
# Where the reason says more than the status: a 504 for "only-if-cached" is no deadline,
# nor is one for an upstream that never opened its HTTP/2 connection (no request sent).
_BY_REASON = {
    reasons.NOT_CACHED: UNAVAILABLE,
    reasons.SHUTTING_DOWN: UNAVAILABLE,
    reasons.UPSTREAM_H2_HANDSHAKE_TIMEOUT: UNAVAILABLE,
}


def is_grpc(headers) -> bool:
    """True for a gRPC request: its content-type is application/grpc[+proto|;...]."""
    for name, value in headers:
        if len(name) == 12 and name.lower() == b"content-type":
            return is_grpc_content_type(value)
    return False


def is_grpc_content_type(value: bytes) -> bool:
    # gRPC-Web (application/grpc-web) is another protocol: its replies are not these.
    value = value.lower()
    return value[:16] == GRPC_CONTENT_TYPE and value[16:17] in (b"", b"+", b";", b" ")


def grpc_status_for(status: int, reason: str) -> int:
    """The gRPC status code a local reply of this HTTP status and reason stands for."""
    code = _BY_REASON.get(reason)
    if code is not None:
        return code
    return _BY_STATUS.get(status, UNKNOWN)


def encode_grpc_message(message: str) -> bytes:
    """Percent-encode a status message: UTF-8, then every byte outside %x20-%x7E, and
    '%' itself, as %XX ("gRPC over HTTP2", Status-Message)."""
    out = bytearray()
    for byte in message.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def decode_grpc_message(value: bytes) -> str:
    """The inverse of ``encode_grpc_message``; a malformed escape is kept as it is."""
    out = bytearray()
    index = 0
    while index < len(value):
        byte = value[index]
        if byte == 0x25 and _is_hex(value[index + 1 : index + 3]):
            out.append(int(value[index + 1 : index + 3], 16))
            index += 3
            continue
        out.append(byte)
        index += 1
    return out.decode("utf-8", errors="replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def status_fields(code: int, message: str) -> list[tuple[bytes, bytes]]:
    """``grpc-status`` and ``grpc-message`` as header (or trailer) fields."""
    fields = [(b"grpc-status", str(code).encode())]
    if message:
        fields.append((b"grpc-message", encode_grpc_message(message)))
    return fields


def grpc_local_reply(answer: LocalReply) -> LocalReply:
    """The trailers-only gRPC form of a local reply. It keeps its reason (logs, metrics);
    the message is the reason in plain words, as the body of the HTTP reply says it."""
    code = grpc_status_for(answer.status, answer.reason)
    message = answer.reason.replace("_", " ")
    headers = ((b"content-type", GRPC_CONTENT_TYPE), *status_fields(code, message))
    return LocalReply(200, answer.reason, b"", headers, trailers_only=True)
