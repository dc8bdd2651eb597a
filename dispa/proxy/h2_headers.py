"""HTTP/2 header blocks to and from the protocol's events: pure functions, no I/O.

A request's header block becomes the same ``Request`` the HTTP/1.1 parser builds, so the
exchange cannot tell the two apart; a response head becomes a header block with
``:status`` first and no hop-by-hop fields (RFC 9113 8.2.2 makes them malformed).
"""

from __future__ import annotations

from dispa.proxy.events import Headers, Request
from dispa.proxy.h1_parser import _host_only
from dispa.proxy.h1_writer import HOP_BY_HOP, VIA


class MalformedRequest(Exception):
    """A request the stream answers itself: ``status`` and ``reason`` make the local reply."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def request_from_headers(
    stream_id: int, block: Headers, end_stream: bool, max_body_bytes: int = 0
) -> Request:
    """The ``Request`` event for a header block (h2 has already checked its pseudo-headers).

    Clients repeat the same header block from request to request (h2load, browsers, gRPC
    stubs: the engine hands over the very same tuple for a repeated block), so what a
    block means is worked out once and each request gets its own copy of the headers,
    which filters may change."""
    if type(block) is not tuple:  # not from the engine: nothing to remember it by
        fields = _meaning(block, end_stream, max_body_bytes)
    else:
        key = (block, end_stream, max_body_bytes)
        fields = _MEANINGS.get(key)
        if fields is None:
            fields = _meaning(block, end_stream, max_body_bytes)
            if len(_MEANINGS) >= _MEANINGS_LIMIT:
                _MEANINGS.clear()  # blocks that never repeat (request ids) fill it up
            _MEANINGS[key] = fields
    # tuple.__new__ straight: the named tuple's own __new__ is a Python call more.
    return _new_tuple(Request, (stream_id, *fields[:5], list(fields[5]), *fields[6:]))


_MEANINGS: dict = {}
_MEANINGS_LIMIT = 1024
_new_tuple = tuple.__new__


def _meaning(block: Headers, end_stream: bool, max_body_bytes: int) -> tuple:
    """Every field of the ``Request`` but its stream id, the headers as a tuple."""
    method = target = authority = protocol = None
    headers: Headers = []
    cookies: list[bytes] = []
    host_header = request_id = content_length = None
    expect_continue = False
    for name, value in block:
        if name[:1] == b":":
            if name == b":method":
                method = value.decode("latin-1")
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
            continue
        if name == b"cookie":
            # RFC 9113 8.2.3: split cookies are joined again for an HTTP/1.1 upstream.
            cookies.append(value)
            continue
        if name == b"host":
            host_header = value
        elif name == b"x-request-id":
            request_id = value or None
        elif name == b"expect":
            expect_continue = value.strip().lower() == b"100-continue"
        elif name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                raise MalformedRequest(400, "malformed_request") from None
        elif name == b"sec-websocket-key" and method == "CONNECT":
            # Not used over HTTP/2 (RFC 8441 5); Dispa makes the upstream's own. (h2 has
            # checked that pseudo-headers come first: the method is known by now.)
            continue
        headers.append((name, value))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    upgrade = None
    if method == "CONNECT":
        if protocol is None or protocol.lower() != b"websocket" or target is None:
            raise MalformedRequest(501, "unsupported_upgrade")  # plain tunnels are not served
        # An extended CONNECT (RFC 8441 4) is the HTTP/2 form of a GET that asks to upgrade
        # to a WebSocket: routed, filtered and forwarded as one. Its stream carries the
        # WebSocket's bytes, never a request body.
        method = "GET"
        upgrade = b"websocket"
        end_stream = True
        content_length = None
    elif target is None:
        raise MalformedRequest(501, "unsupported_upgrade")
    if authority is not None:
        if host_header is None:
            # The upstream speaks HTTP/1.1, which needs Host: :authority is it (RFC 9113 8.3.1).
            headers.insert(0, (b"host", authority))
            host_header = authority
        elif host_header != authority:
            # RFC 9113 8.3.1: else the router could follow one and the upstream the other.
            raise MalformedRequest(400, "malformed_request")
    if content_length is not None and max_body_bytes and content_length > max_body_bytes:
        raise MalformedRequest(413, "body_too_large")
    query_at = target.find(b"?")
    if query_at >= 0:
        path, query = target[:query_at], target[query_at:]
    else:
        path, query = target, b""
    if end_stream:
        has_body = False
    else:
        has_body = content_length != 0
    return (
        method,
        target,
        path.decode("latin-1"),
        query,
        _host_only(host_header) if host_header is not None else "",
        tuple(headers),
        "2",
        True,
        has_body,
        content_length,
        host_header,
        request_id,
        expect_continue,
        upgrade,
    )


def response_headers(
    status: int,
    headers: Headers,
    content_length: int | None,
    request_id: bytes | None,
    proxied: bool = True,
) -> Headers:
    """The header block of a response: names lower-cased, hop-by-hop fields dropped.

    What to do with a field name (keep it lower-cased, drop it, merge it into Via ...) is
    remembered per name as sent, so a response costs one dictionary lookup a field."""
    status_field = _STATUS_FIELDS.get(status)
    if status_field is None:
        status_field = (b":status", str(status).encode())
    block: Headers = [status_field]
    via = None
    kinds = _NAME_KINDS
    for field in headers:
        name = field[0]
        known = kinds.get(name)
        if known is None:
            known = _name_kind(name)
        lower, kind = known
        if kind is _KEEP:
            block.append((lower, field[1]))
        elif kind is _CONNECTION:
            if not _names_only_hop_by_hop(field[1]):
                # It names more fields to drop (rare): the long way, which honours that.
                return _listed_response_headers(
                    status, headers, content_length, request_id, proxied
                )
        elif kind is _VIA and proxied:
            value = field[1]
            via = value if via is None else via + b", " + value
        elif kind is not _DROP:
            if kind is _REQUEST_ID:
                request_id = None  # the upstream's own id is kept
            block.append((lower, field[1]))
    return _with_gateway_fields(block, status, content_length, request_id, via, proxied)


_KEEP, _DROP, _VIA, _REQUEST_ID, _CONNECTION = "keep", "drop", "via", "request-id", "connection"
_STATUS_FIELDS = {code: (b":status", str(code).encode()) for code in range(100, 600)}
_NAME_KINDS: dict[bytes, tuple[bytes, str]] = {}
_NAME_KINDS_LIMIT = 1024


def _name_kind(name: bytes) -> tuple[bytes, str]:
    lower = name.lower()
    if lower == b"connection":
        kind = _CONNECTION
    elif lower in HOP_BY_HOP or lower == b"content-length":
        kind = _DROP
    elif lower == b"via":
        kind = _VIA
    elif lower == b"x-request-id":
        kind = _REQUEST_ID
    else:
        kind = _KEEP
    if len(_NAME_KINDS) >= _NAME_KINDS_LIMIT:
        _NAME_KINDS.clear()  # an upstream inventing names must not grow it without end
    known = _NAME_KINDS[name] = (lower, kind)
    return known


def _names_only_hop_by_hop(value: bytes) -> bool:
    """Whether a Connection field lists nothing but fields dropped anyway
    ("keep-alive", "upgrade"): then it needs no more than to be dropped itself."""
    plain = _PLAIN_CONNECTION.get(value)
    if plain is None:
        plain = all(token.strip().lower() in HOP_BY_HOP for token in value.split(b","))
        if len(_PLAIN_CONNECTION) >= _NAME_KINDS_LIMIT:
            _PLAIN_CONNECTION.clear()
        _PLAIN_CONNECTION[value] = plain
    return plain


_PLAIN_CONNECTION: dict[bytes, bool] = {}


def _listed_response_headers(
    status: int,
    headers: Headers,
    content_length: int | None,
    request_id: bytes | None,
    proxied: bool,
) -> Headers:
    """As ``response_headers``, for a response whose Connection field lists more fields
    to drop (RFC 9110 7.6.1)."""
    named = HOP_BY_HOP
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            named = named | {token.strip().lower() for token in value.split(b",")}
    block: Headers = [(b":status", str(status).encode())]
    via = None
    for name, value in headers:
        lower = name.lower()
        if lower in named or lower == b"content-length":
            continue
        if proxied and lower == b"via":
            via = value if via is None else via + b", " + value
            continue
        if lower == b"x-request-id":
            request_id = None  # the upstream's own id is kept
        block.append((lower, value))
    return _with_gateway_fields(block, status, content_length, request_id, via, proxied)


def _with_gateway_fields(
    block: Headers,
    status: int,
    content_length: int | None,
    request_id: bytes | None,
    via: bytes | None,
    proxied: bool,
) -> Headers:
    """The fields Dispa adds at the end of a response block: its request id (unless the
    upstream sent one), its Via entry, and the length it knows."""
    if request_id:
        block.append((b"x-request-id", request_id))
    if proxied:
        block.append((b"via", via + b", " + VIA if via else VIA))
    if content_length is not None and status != 204 and status >= 200:
        block.append((b"content-length", str(content_length).encode()))
    return block
