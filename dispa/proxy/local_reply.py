"""Replies Dispa makes itself: errors, redirects, direct responses.

Each error carries a short reason that is counted in metrics and written to the access
log; the body says it in plain words, never a stack trace.
"""

from __future__ import annotations

from typing import NamedTuple

REASON_PHRASES = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}


def reason_phrase(status: int) -> bytes:
    return REASON_PHRASES.get(status, b"Unknown")


class LocalReply(NamedTuple):
    status: int
    reason: str  # machine-friendly cause, e.g. "no_route", "upstream_timeout"
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    # gRPC's trailers-only form (grpc/status.py): one header block, no body and no
    # content-length, which over HTTP/2 is a single HEADERS frame with END_STREAM.
    trailers_only: bool = False


def error_reply(status: int, reason: str, extra_headers=()) -> LocalReply:
    """An error in plain words: the body is the reason with underscores as spaces."""
    body = reason.replace("_", " ").encode() + b"\n"
    return LocalReply(status, reason, body, ((b"content-type", b"text/plain"), *extra_headers))


# The reasons, in one place, so metrics and docs list the same set.
NO_ROUTE = "no_route"
MALFORMED = "malformed_request"
HEADER_TOO_LARGE = "header_too_large"
BODY_TOO_LARGE = "body_too_large"
CLIENT_TIMEOUT = "client_timeout"
UPSTREAM_CONNECT = "upstream_connect_failure"
UPSTREAM_RESET = "upstream_reset"
UPSTREAM_PROTOCOL = "upstream_protocol_error"
# An HTTP/2 endpoint accepted the connection but sent no SETTINGS within timeouts.connect.
UPSTREAM_H2_HANDSHAKE_TIMEOUT = "upstream_h2_handshake_timeout"
NO_HEALTHY = "no_healthy_endpoint"
CIRCUIT_OPEN = "circuit_open"
UPSTREAM_TIMEOUT = "upstream_timeout"
RATE_LIMITED = "rate_limited"
SHUTTING_DOWN = "shutting_down"
NOT_CACHED = "not_cached"
UNSUPPORTED_UPGRADE = "unsupported_upgrade"
UNSUPPORTED_VERSION = "unsupported_http_version"
# Slow POST: the body came slower than limits.min_body_rate allows; or the client address
# already streams limits.max_uploads_per_client bodies to upstreams.
BODY_TOO_SLOW = "request_body_too_slow"
CLIENT_UPLOAD_LIMIT = "client_upload_limit"
# gRPC: the client's deadline (grpc-timeout) passed, or its grpc-timeout was malformed.
GRPC_DEADLINE = "grpc_deadline_exceeded"
GRPC_BAD_TIMEOUT = "malformed_grpc_timeout"
# A filter raised in one of its phases (or its pending work failed); logged with its name.
FILTER_ERROR = "filter_error"
# The filter executor's threads and queue were all taken: the job was not queued.
FILTER_EXECUTOR_FULL = "filter_executor_full"
# A filter's pending work outlasted the route's filter_timeout (no other timer was armed).
FILTER_TIMEOUT = "filter_timeout"
# A response body that a whole-body filter reads was larger than the filter's limit.
RESPONSE_BODY_TOO_LARGE = "response_body_too_large"
# A `fault` filter aborted the request on purpose, with its configured status.
FAULT_ABORT = "fault_abort"
