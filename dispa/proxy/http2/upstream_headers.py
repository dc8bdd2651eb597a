"""Header blocks for an HTTP/2 upstream: the forwarded request, the response, trailers.

Pure functions, no I/O. The request block carries what ``http1.writer.request_head`` adds
for an HTTP/1.1 upstream (X-Forwarded-*, Via, X-Request-Id), as pseudo-headers first and
lower-case names after (RFC 9113 8.2.1). Connection-specific fields are malformed in
HTTP/2 (RFC 9113 8.2.2) and dropped, except ``te: trailers``, which gRPC servers require.
Host becomes :authority. The response block becomes the same ``Response`` event the
HTTP/1.1 parser builds, so the exchange cannot tell the two apart.
"""

from __future__ import annotations

from dispa.proxy.events import Headers, Response
from dispa.proxy.http1.writer import HOP_BY_HOP, VIA
from dispa.proxy.local_reply import reason_phrase

# Set by Dispa on the forwarded request; a client's copies are replaced.
_REPLACED = frozenset({b"host", b"x-forwarded-proto", b"x-forwarded-host", b"content-length"})


class MalformedResponse(Exception):
    """A response header block the upstream should not have sent."""


def request_block(
    method: str,
    target: bytes,
    headers: Headers,
    *,
    authority: bytes,
    scheme: str,
    client_ip: str,
    host: bytes | None,
    request_id: bytes,
    content_length: int | None,
    upstream_scheme: str = "http",
) -> Headers:
    """The header block of the request Dispa sends to an HTTP/2 upstream.

    ``scheme`` is the client's (X-Forwarded-Proto); ``upstream_scheme`` that of the
    connection to the upstream (:scheme), "http" for h2c."""
    block: Headers = [
        (b":method", method.encode()),
        (b":scheme", upstream_scheme.encode()),
        (b":authority", authority),
        (b":path", target),
    ]
    # What a Connection header named was removed when the request arrived (http1/parser.py):
    # a field a filter added since is forwarded whatever the client's Connection said.
    named = HOP_BY_HOP
    forwarded_for = via = None
    has_request_id = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"te":
            # The one value HTTP/2 allows (RFC 9113 8.2.2): gRPC servers insist on it.
            if b"trailers" in value.lower():
                block.append((b"te", b"trailers"))
            continue
        if lower in named or lower in _REPLACED or lower[:1] == b":":
            continue
        if lower == b"x-forwarded-for":
            forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
        elif lower == b"via":
            via = value if via is None else via + b", " + value
        else:
            if lower == b"x-request-id":
                has_request_id = True
            block.append((lower, value))
    client = client_ip.encode()
    block.append((b"x-forwarded-for", forwarded_for + b", " + client if forwarded_for else client))
    block.append((b"x-forwarded-proto", scheme.encode()))
    block.append((b"via", via + b", " + VIA if via else VIA))
    if host:
        block.append((b"x-forwarded-host", host))
    if not has_request_id:
        block.append((b"x-request-id", request_id))
    if content_length is not None:
        block.append((b"content-length", b"%d" % content_length))
    return block


def response_from_block(stream_id: int, block: Headers) -> Response:
    """The ``Response`` event for a response header block (h2 has checked its form)."""
    status = None
    content_length = None
    headers: Headers = []
    for name, value in block:
        if name[:1] == b":":
            if name == b":status":
                status = value
            continue
        if name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                raise MalformedResponse("content-length is not a number") from None
        headers.append((name, value))
    if status is None or len(status) != 3 or not status.isdigit():
        raise MalformedResponse("no valid :status")
    code = int(status)
    return Response(stream_id, code, reason_phrase(code), headers, "2", True, content_length)


# Fields a trailer section may not carry (RFC 9110 6.5.1: framing, routing, request
# modifiers, authentication, response control data, how to process the content), and the
# fields Dispa itself sets on a message: a peer that merges trailers into the head (many
# servers do) must never get a second Host, a forged X-Forwarded-For or a credential
# that no check in front of it saw.
NOT_IN_TRAILERS = HOP_BY_HOP | {
    b"content-length",
    b"host",
    b"cache-control",
    b"expect",
    b"max-forwards",
    b"pragma",
    b"range",
    b"if-match",
    b"if-none-match",
    b"if-modified-since",
    b"if-unmodified-since",
    b"if-range",
    b"authorization",
    b"cookie",
    b"www-authenticate",
    b"age",
    b"expires",
    b"date",
    b"location",
    b"retry-after",
    b"vary",
    b"warning",
    b"content-encoding",
    b"content-type",
    b"content-range",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"via",
    b"x-request-id",
}


def trailer_fields(headers: Headers) -> Headers:
    """Trailer fields as forwarded either way: lower-case, no pseudo-field, none of
    ``NOT_IN_TRAILERS``."""
    fields: Headers = []
    for name, value in headers:
        lower = name.lower()
        if lower[:1] == b":" or lower in NOT_IN_TRAILERS:
            continue
        fields.append((lower, value))
    return fields


def trailer_section(headers: Headers) -> bytes:
    """HTTP/1.1 chunked trailers: the last chunk with the fields, then the empty line."""
    parts = [b"0\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def accepts_trailers(headers: Headers) -> bool:
    """The client said ``TE: trailers``: an HTTP/1.1 client gets trailers only then."""
    for name, value in headers:
        if len(name) == 2 and name.lower() == b"te" and b"trailers" in value.lower():
            return True
    return False
