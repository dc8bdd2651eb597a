"""Cache keys (RFC 9111 sections 2 and 4.1).

The primary key is the method and the target URI; HEAD shares GET's key, since a GET
entry answers a HEAD request (its body is simply not sent). The secondary key picks one
variant among the responses stored under a primary key: the values of the request
headers that the stored response's Vary names.
"""

from __future__ import annotations

import hashlib

import msgpack

from dispa.edge.cache.fields import AnyHeaders, field_lines, list_members
from dispa.proxy.request_target import DEFAULT_RULES, PathRefused, PathRules, origin_form

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def primary_key(method: str, scheme: str, host: str, target: bytes | str) -> str:
    return f"{'GET' if method == 'HEAD' else method} {url_of(scheme, host, target)}"


def url_of(scheme: str, host: str, target: bytes | str) -> str:
    """``scheme://host/target``: what entries record and what purges name."""
    if isinstance(target, bytes | bytearray):
        target = bytes(target).decode("latin-1")
    return normalize_url(f"{scheme}://{host}{target or '/'}")


def normalize_url(url: str) -> str:
    """Scheme and host compare without case, a default port is the same as none, and a
    host's trailing dot is dropped (routes see ``a.example.`` as ``a.example``, so one
    entry serves, and one purge covers, both). The target is kept as it is: the data
    plane normalised it already, and ``purge_key`` does for a purge."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    scheme = scheme.lower()
    slash = rest.find("/")
    authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host, colon, port = authority.lower().rpartition(":")
    if not colon or "]" in port:  # no port (an IPv6 literal's colons are not one)
        host, port = authority.lower(), ""
    if port == _DEFAULT_PORTS.get(scheme):
        port = ""
    if host.endswith("."):
        host = host[:-1]
    return f"{scheme}://{host}{':' + port if port else ''}{target}"


def purge_key(url: str, rules: PathRules = DEFAULT_RULES) -> str:
    """The URL an entry is recorded under (``url_of``) for ``url`` as a purge names it.

    A request's target is normalised once, when it is read (``origin_form``), and the
    entry keeps that form; a purge is written by hand, as ``/a%7Eb`` or ``//x/./y``. So
    its target goes through the same function, with a listener's path rules, or the
    purge would miss ``/a~b`` and ``/x/y``. PathRefused when the data plane would refuse
    the target under ``rules`` (no entry can be stored under it): not an absolute
    http(s) URL, userinfo, a fragment, a raw character outside ASCII, ``%2F`` by default.
    """
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in _DEFAULT_PORTS:
        raise PathRefused("not an absolute http(s) URL")
    try:
        raw = url.encode("ascii")
    except UnicodeEncodeError:
        raise PathRefused("a character outside ASCII (percent-encode it as UTF-8)") from None
    target, _, _, authority = origin_form(raw, "GET", rules)
    return url_of(scheme, authority.decode("ascii"), target)


def vary_names(response_headers: AnyHeaders) -> tuple[bytes, ...]:
    """The request header names a response varies on: lower-cased, distinct, sorted
    (so ``Vary: A, B`` and ``Vary: b, a`` select the same way). May contain ``*``."""
    members = list_members(field_lines(response_headers, b"vary"))
    return tuple(sorted({member.lower() for member in members}))


def secondary_key(names: tuple[bytes, ...], request_headers: AnyHeaders) -> bytes:
    """The request's values for ``names``, normalised; b"" when nothing varies.

    Normalisation (allowed by 4.1): several lines are joined, and whitespace around each
    comma-separated member is dropped, so ``gzip, br`` matches ``gzip,br``. A header the
    request lacks is kept apart from one it sends empty: an absent header only matches
    absence. msgpack keeps the encoding unambiguous whatever bytes the values hold.
    """
    if not names:
        return b""
    values = []
    for name in names:
        lines = field_lines(request_headers, name)
        values.append([name, b",".join(list_members(lines)) if lines else None])
    return msgpack.packb(values, use_bin_type=True)


def vary_key_for(response_headers: AnyHeaders, request_headers: AnyHeaders) -> bytes:
    return secondary_key(vary_names(response_headers), request_headers)


def variant_id(primary_key: str, vary_key: bytes) -> str:
    """The name of one stored variant (and of its file): fixed length, any file system."""
    packed = msgpack.packb([primary_key.encode("utf-8", "surrogatepass"), vary_key])
    return hashlib.sha256(packed).hexdigest()
