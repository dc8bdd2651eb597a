"""HTTP/1.1 message heads as bytes: the forwarded request and the response to the client.

Pure functions. Hop-by-hop headers (RFC 9110 7.6.1) are dropped in both directions: the
fixed set here; the fields a Connection header names were removed by the parser when the
message arrived, so a field a filter adds later is never taken for one of them (and Host
never is). A WebSocket handshake is the
one exception: its request and its 101 answer say ``Connection: upgrade`` and carry the
Upgrade header on (``upgrade=``), since the upgrade is what is being proxied.
"""

from __future__ import annotations

from dispa.proxy.events import Headers, RepeatedHeaders

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Headers Dispa sets itself on the forwarded request; copies from the client are replaced.
_REPLACED_ON_REQUEST = frozenset({b"x-forwarded-proto", b"x-forwarded-host", b"content-length"})
_REPLACED_ON_RESPONSE = frozenset({b"content-length"})
_STATUS = {status: b"%d" % status for status in range(100, 600)}
VIA = b"1.1 dispa"

# What each header name means to the head being written, looked up by the name as sent:
# one dict lookup per header instead of lower-casing it and testing several sets. Names
# repeat from one message to the next; the tables are cleared if they ever grow large.
KIND_COPY, KIND_DROP, KIND_CONNECTION, KIND_FORWARDED_FOR, KIND_VIA, KIND_REQUEST_ID = range(6)
_KIND_TABLE_SIZE = 1024
_request_kinds: dict[bytes, int] = {}
_response_kinds: dict[bytes, int] = {}


def _kind(lower: bytes, replaced: frozenset) -> int:
    if lower == b"connection":
        return KIND_CONNECTION
    if lower in HOP_BY_HOP or lower in replaced:
        return KIND_DROP
    if lower == b"x-forwarded-for":
        return KIND_FORWARDED_FOR
    if lower == b"via":
        return KIND_VIA
    if lower == b"x-request-id":
        return KIND_REQUEST_ID
    return KIND_COPY


def request_field_kind(lower: bytes) -> int:
    """What a request field (name lower-cased) means to the forwarded request's head."""
    return _kind(lower, _REPLACED_ON_REQUEST)


def response_field_kind(lower: bytes) -> int:
    """What a response field (name lower-cased) means to a response head, in HTTP/1.1 or
    HTTP/2 alike."""
    kind = _kind(lower, _REPLACED_ON_RESPONSE)
    return KIND_COPY if kind == KIND_FORWARDED_FOR else kind  # only a request's is extended


def _learn(table: dict[bytes, int], name: bytes, classify) -> int:
    kind = classify(name.lower())
    if len(table) >= _KIND_TABLE_SIZE:
        table.clear()
    table[name] = kind
    return kind


def without_connection_tokens(headers: Headers, keep: frozenset = frozenset()) -> Headers:
    """The headers less every Connection header and each header it names (RFC 9110 7.6.1),
    but for the names in ``keep``. The parsers call it once, on receipt (http1/parser.py)."""
    named: set[bytes] = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b","))
    named.add(b"connection")
    named -= keep
    return [(name, value) for name, value in headers if name.lower() not in named]


# "close" is not among them: a field named Close is dropped when Connection names it.
_PLAIN_CONNECTION_VALUES = frozenset({b"keep-alive", b"Keep-Alive", b"upgrade", b"Upgrade"})


def names_more_hop_by_hop(value: bytes) -> bool:
    """A Connection header naming headers beyond the fixed set (rare: most say keep-alive).
    Only then is the slower pass that collects its tokens first worth running."""
    if value in _PLAIN_CONNECTION_VALUES:
        return False
    return any(t.strip().lower() not in HOP_BY_HOP for t in value.split(b","))


def request_head(
    method: str,
    target: bytes,
    headers: Headers,
    *,
    client_ip: str,
    scheme: str,
    host: bytes | None,
    request_id: bytes,
    content_length: int | None,
    chunked: bool,
    upgrade: bytes | None = None,
) -> bytes:
    """The head of the request Dispa sends upstream (always HTTP/1.1, keep-alive).

    ``upgrade``: the client's Upgrade header value, forwarded with ``Connection: upgrade``.
    """
    if type(headers) is RepeatedHeaders:
        fields = headers.request_fields
        if fields is None:
            fields = headers.request_fields = _request_fields(headers)
        if content_length is None and not chunked and upgrade is None:
            # A head seen before, from a client seen before: all of it but the request id
            # is what it was the last time.
            key = (method, target, client_ip, scheme, host)
            starts = headers.request_starts
            start = starts.get(key)
            if start is None:
                start = _request_start(method, target, fields, client_ip, scheme, host)
                if len(starts) >= _STARTS_LIMIT:
                    starts.clear()
                starts[key] = start
        else:
            start = _request_start(
                method, target, fields, client_ip, scheme, host, content_length, chunked, upgrade
            )
    else:
        fields = _request_fields(headers)
        start = _request_start(
            method, target, fields, client_ip, scheme, host, content_length, chunked, upgrade
        )
    if fields[3]:  # the client's own X-Request-Id is among the copied fields
        return start + b"\r\n"
    return b"".join((start, b"x-request-id: ", request_id, b"\r\n\r\n"))


# Heads remembered per RepeatedHeaders list (one per client address, route rewrite...).
_STARTS_LIMIT = 16


def _request_start(
    method: str,
    target: bytes,
    fields: tuple,
    client_ip: str,
    scheme: str,
    host: bytes | None,
    content_length: int | None = None,
    chunked: bool = False,
    upgrade: bytes | None = None,
) -> bytes:
    """The forwarded head up to its request id and final empty line."""
    copied, forwarded_for, via, _ = fields
    client = client_ip.encode()
    parts = [
        method.encode(),
        b" ",
        target,
        b" HTTP/1.1\r\n",
        copied,
        b"x-forwarded-for: ",
        forwarded_for + b", " + client if forwarded_for else client,
        b"\r\nx-forwarded-proto: ",
        scheme.encode(),
        b"\r\nvia: ",
        via + b", " + VIA if via else VIA,
        b"\r\n",
    ]
    if host:
        parts += (b"x-forwarded-host: ", host, b"\r\n")
    if upgrade is not None:
        parts += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n")
    if content_length is not None:
        parts += (b"content-length: ", str(content_length).encode(), b"\r\n")
    elif chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    return b"".join(parts)


def _request_fields(headers: Headers) -> tuple:
    """What the client's fields give the forwarded head (see _fields)."""
    return _fields(headers, _request_kinds, request_field_kind, True)


def _fields(headers: Headers, kinds: dict, classify, extend_via: bool) -> tuple:
    """What a message's fields give the head written from them: the lines copied as they
    are, the X-Forwarded-For and Via values to extend (a request's X-Forwarded-For only,
    Via only when ``extend_via``, else copied), and whether it has its own request id."""
    parts: list[bytes] = []
    forwarded_for = None
    via = None
    has_request_id = False
    for name, value in headers:
        kind = kinds.get(name)
        if kind is None:
            kind = _learn(kinds, name, classify)
        if kind == KIND_COPY:
            parts += (name, b": ", value, b"\r\n")
        elif kind == KIND_FORWARDED_FOR:
            forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
        elif kind == KIND_VIA:
            if extend_via:
                via = value if via is None else via + b", " + value
            else:
                parts += (name, b": ", value, b"\r\n")
        elif kind == KIND_REQUEST_ID:
            has_request_id = True
            parts += (name, b": ", value, b"\r\n")
    return b"".join(parts), forwarded_for, via, has_request_id


def response_head(
    status: int,
    reason: bytes,
    headers: Headers,
    *,
    content_length: int | None,
    chunked: bool,
    keep_alive: bool,
    proxied: bool = True,
    request_id: bytes | None = None,
    upgrade: bytes | None = None,
) -> bytes:
    """The head of the response Dispa sends to an HTTP/1.x client.

    ``proxied`` responses came from an upstream and gain a Via entry; local replies do not.
    ``upgrade``: a 101's Upgrade value; the head says ``Connection: upgrade`` and no framing.
    """
    if proxied and upgrade is None and type(headers) is RepeatedHeaders:
        fields = headers.response_fields
        if fields is None:
            fields = headers.response_fields = _response_fields(headers, proxied)
        # A head seen before: all of it but the request id is what it was the last time.
        key = (status, reason, content_length, chunked, keep_alive)
        starts = headers.response_starts
        start = starts.get(key)
        if start is None:
            start = _response_start(
                status, reason, fields, True, content_length, chunked, keep_alive
            )
            if len(starts) >= _STARTS_LIMIT:
                starts.clear()
            starts[key] = start
    else:
        fields = _response_fields(headers, proxied)
        start = _response_start(
            status, reason, fields, proxied, content_length, chunked, keep_alive, upgrade
        )
    if request_id and not fields[3]:  # else the upstream's own id is kept
        return b"".join((start, b"x-request-id: ", request_id, b"\r\n\r\n"))
    return start + b"\r\n"


def _response_start(
    status: int,
    reason: bytes,
    fields: tuple,
    proxied: bool,
    content_length: int | None,
    chunked: bool,
    keep_alive: bool,
    upgrade: bytes | None = None,
) -> bytes:
    """The client's head up to its request id and final empty line."""
    copied, _, via, _ = fields
    parts = [b"HTTP/1.1 ", _STATUS.get(status) or b"%d" % status, b" ", reason, b"\r\n", copied]
    if proxied:
        parts += (b"via: ", via + b", " + VIA if via else VIA, b"\r\n")
    if upgrade is not None:
        parts += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n")
        return b"".join(parts)
    if content_length is not None:
        parts += (b"content-length: ", b"%d" % content_length, b"\r\n")
    elif chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    return b"".join(parts)


def interim_head(status: int, reason: bytes, headers: Headers) -> bytes:
    """An interim (1xx) head for an HTTP/1.1 client: the upstream's fields less the
    hop-by-hop and framing ones, Via extended; no framing of its own (a 1xx has no
    content, RFC 9110 15.2) and no request id (that is the final answer's)."""
    fields = _response_fields(headers, True)
    return _response_start(status, reason, fields, True, None, False, True) + b"\r\n"


def _response_fields(headers: Headers, proxied: bool) -> tuple:
    """What the upstream's fields give the client's head (see _fields; a response's
    X-Forwarded-For is copied, and a local reply's Via too)."""
    return _fields(headers, _response_kinds, response_field_kind, proxied)


def chunk(data: bytes) -> bytes:
    # An empty chunk would be "0\r\n\r\n", the last-chunk: it would end the body early.
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
