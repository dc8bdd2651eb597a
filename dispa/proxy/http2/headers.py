"""HTTP/2 header blocks to and from the protocol's events: pure functions, no I/O.

A request's header block becomes the same ``Request`` the HTTP/1.1 parser builds, so the
exchange cannot tell the two apart; a response head becomes a header block with
``:status`` first and no hop-by-hop fields (RFC 9113 8.2.2 makes them malformed).
"""

from __future__ import annotations

from dispa.proxy.events import Headers, Request
from dispa.proxy.http1.parser import _host_only
from dispa.proxy.http1.writer import (
    KIND_CONNECTION,
    KIND_COPY,
    KIND_DROP,
    KIND_REQUEST_ID,
    KIND_VIA,
    VIA,
    response_field_kind,
)
from dispa.proxy.request_target import (
    DEFAULT_RULES,
    PathRefused,
    PathRules,
    origin_form,
    valid_authority,
)


class MalformedRequest(Exception):
    """A request the stream answers itself: ``status`` and ``reason`` make the local reply."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def request_from_headers(
    stream_id: int,
    block: tuple,
    end_stream: bool,
    max_body_bytes: int = 0,
    path_rules: PathRules = DEFAULT_RULES,
) -> Request:
    """The ``Request`` event for a header block (h2 has already checked its pseudo-headers).

    Clients repeat the same header block from request to request (h2load, browsers, gRPC
    stubs: the engine hands over the very same tuple for a repeated block), so what a
    block means is worked out once and each request gets its own copy of the headers,
    which filters may change."""
    key = (block, end_stream, max_body_bytes, path_rules)
    fields = _MEANINGS.get(key)
    if fields is None:
        fields = _meaning(block, end_stream, max_body_bytes, path_rules)
        if len(_MEANINGS) >= _MEANINGS_LIMIT:
            _MEANINGS.clear()  # blocks that never repeat (request ids) fill it up
        _MEANINGS[key] = fields
    # tuple.__new__ straight: the named tuple's own __new__ is a Python call more.
    return _new_tuple(Request, (stream_id, *fields[:5], list(fields[5]), *fields[6:]))


_MEANINGS: dict = {}
_MEANINGS_LIMIT = 1024
_new_tuple = tuple.__new__


def _meaning(
    block: tuple, end_stream: bool, max_body_bytes: int, path_rules: PathRules = DEFAULT_RULES
) -> tuple:
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
    if authority is not None and not valid_authority(authority):
        # RFC 9113 8.3.1: no userinfo; RFC 9110 4.2.1: an http(s) host is never empty.
        raise MalformedRequest(400, "malformed_request")
    if host_header and not valid_authority(host_header):
        raise MalformedRequest(400, "malformed_request")
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
    try:
        # The one form routing, filters, the cache key and the upstream all see. :path is
        # origin-form, or '*' for OPTIONS (RFC 9113 8.3.1): never absolute-form.
        target, path, query, _ = origin_form(target, method, path_rules, absolute_allowed=False)
    except PathRefused:
        raise MalformedRequest(400, "malformed_request") from None
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

    Each field name is classified as the HTTP/1.1 head writer does it
    (``response_field_kind``), remembered with its lower-case form per name as sent, so a
    response costs one dictionary lookup a field."""
    status_field = _STATUS_FIELDS.get(status)
    if status_field is None:
        status_field = (b":status", str(status).encode())
    block: Headers = [status_field]
    via = None
    known_names = _NAMES
    for field in headers:
        name = field[0]
        known = known_names.get(name)
        if known is None:
            known = _learn(name)
        lower, kind = known
        if kind == KIND_COPY:
            block.append((lower, field[1]))
        elif kind == KIND_CONNECTION:
            continue  # what it names was removed on receipt (http1/parser.py)
        elif kind == KIND_VIA and proxied:
            value = field[1]
            via = value if via is None else via + b", " + value
        elif kind != KIND_DROP:  # an X-Request-Id, or a Via on a local reply
            if kind == KIND_REQUEST_ID:
                request_id = None  # the upstream's own id is kept
            block.append((lower, field[1]))
    if request_id:
        block.append((b"x-request-id", request_id))
    if proxied:
        block.append((b"via", via + b", " + VIA if via else VIA))
    if content_length is not None and status != 204 and status >= 200:
        block.append((b"content-length", str(content_length).encode()))
    return block


_STATUS_FIELDS = {code: (b":status", str(code).encode()) for code in range(100, 600)}
# Response field name as sent -> (lower-cased, its kind); cleared if it ever grows large.
_NAMES: dict[bytes, tuple[bytes, int]] = {}
_NAMES_LIMIT = 1024


def _learn(name: bytes) -> tuple[bytes, int]:
    lower = name.lower()
    if len(_NAMES) >= _NAMES_LIMIT:
        _NAMES.clear()  # an upstream inventing names must not grow it without end
    known = _NAMES[name] = (lower, response_field_kind(lower))
    return known
