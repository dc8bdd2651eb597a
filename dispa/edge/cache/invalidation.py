"""Invalidation after updates or deletions (RFC 9111 section 4.4).

A non-error response (2xx, 3xx) to an unsafe request, or one whose method the cache does
not know to be safe, means the resource may have changed: what is stored for the target
URI goes. So does what is stored for the URIs in Location and Content-Location, which
name what the request created or changed, but only when they share the target's origin
(scheme, host and port): otherwise any origin could empty another's entries.
"""

from __future__ import annotations

from urllib.parse import urldefrag, urljoin, urlsplit

from dispa.edge.cache.fields import AnyHeaders, field_lines

# RFC 9110 section 9.2.1: the methods defined as safe. Every other one invalidates.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_RELATED_FIELDS = (b"location", b"content-location")


def invalidates(method: str) -> bool:
    return method not in SAFE_METHODS


def urls_to_invalidate(target_url: str, status: int, headers: AnyHeaders) -> list[str]:
    """The URLs whose stored responses go after an unsafe request to ``target_url``
    (``scheme://host/target``) was answered ``status`` with these response headers:
    none for an error or interim status; else the target, and the Location and
    Content-Location URIs resolved against it, when they have its origin."""
    if not 200 <= status < 400:
        return []
    urls = [target_url]
    origin = _origin(target_url)
    for name in _RELATED_FIELDS:
        lines = field_lines(headers, name)
        if len(lines) != 1:  # each is one URI-reference: several lines are not one
            continue
        url = _resolve(target_url, lines[0])
        if url is not None and url not in urls and _origin(url) == origin:
            urls.append(url)
    return urls


def _resolve(base: str, reference: bytes) -> str | None:
    text = reference.decode("latin-1").strip()
    if not text:
        return None
    try:
        # A fragment is never sent in a request, so no entry is stored under one.
        return urldefrag(urljoin(base, text)).url
    except ValueError:  # a malformed URI (a broken IPv6 literal ...)
        return None


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in; None if not http(s)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        host = parts.hostname.rstrip(".")  # lower-cased by urlsplit; a.example. is a.example
        port = parts.port
        return scheme, host, _DEFAULT_PORTS[scheme] if port is None else port
    except ValueError:  # a port out of range or not a number
        return None
