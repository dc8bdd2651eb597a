"""Checks of HTTP/2 header blocks (RFC 9113 8.2, 8.3): pure functions, no state.

Done once per distinct block: the engine keeps the answer with a block it looks up.
"""

from __future__ import annotations

import re

# RFC 9113 8.2: field names are lowercase tokens; values carry no NUL, CR or LF and do not
# start or end with whitespace. Connection-specific fields make a request malformed.
_BAD_NAME = re.compile(rb"[^a-z0-9!#$%&'*+\-.^_`|~]")
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority", b":protocol"))


def valid_trailers(headers) -> bool:
    """Trailer fields: lowercase token names (so no pseudo-header), clean values, no
    connection-specific fields (RFC 9113 8.2)."""
    for name, value in headers:
        if (
            not name
            or _BAD_NAME.search(name)
            or _BAD_VALUE.search(value)
            or name in _CONNECTION_SPECIFIC
            or (name == b"te" and value != b"trailers")
        ):
            return False
    return True


def check_request(headers, max_list_size: int) -> tuple[int, bool] | None:
    """``(content-length or -1, over the header list limit)`` for a request's header
    block, or None if it is malformed (RFC 9113 8.2, 8.3.1: the pseudo-headers a request
    needs, each once, before the other fields, and no connection-specific field). A list
    over the limit is not checked further: it is answered 431 whatever it holds."""
    pseudo: dict[bytes, bytes] = {}
    content_length = -1
    size = 0
    regular = False
    for name, value in headers:
        size += len(name) + len(value) + 32
        if size > max_list_size:
            # Answered 431 as it stands: checking the rest would cost us the whole list (an
            # HPACK bomb names one large field thousands of times).
            return -1, True
        if _BAD_VALUE.search(value):
            return None
        if name[:1] == b":":
            if regular or name not in _REQUEST_PSEUDO or name in pseudo:
                return None
            pseudo[name] = value
            continue
        regular = True
        if (
            not name
            or _BAD_NAME.search(name)
            or name in _CONNECTION_SPECIFIC
            or (name == b"te" and value != b"trailers")
        ):
            return None
        if name == b"content-length":
            if not value.isdigit() or (content_length >= 0 and int(value) != content_length):
                return None
            content_length = int(value)
    method = pseudo.get(b":method")
    if not method:
        return None
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":authority" not in pseudo or b":scheme" in pseudo or b":path" in pseudo:
            return None
    elif (
        not pseudo.get(b":path")
        or b":scheme" not in pseudo
        or (b":protocol" in pseudo and method != b"CONNECT")
    ):
        return None
    return content_length, size > max_list_size
