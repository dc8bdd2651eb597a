"""The normal form of a request path (RFC 3986 6.2.2): pure functions, no I/O.

A path has one normal form, and routing, access rules, the cache key and the upstream all
see that form (docs/life-of-a-request.md, "What the upstream receives"). Route paths in
the config are written in it too (schema.py checks them), which is why this lives with the
config model rather than in the data plane that calls it for each new request head.

The steps, in order:
1. Raw bytes: control characters, space, DEL and bytes above 0x7F are refused (llhttp
   already refuses them in an HTTP/1.1 request line; HTTP/2 ``:path`` needs it here), and
   so are ``#`` (a fragment is never part of a request target, RFC 9112 3.2) and a raw
   ``\\``, which some servers (IIS, and Windows file systems behind others) read as a
   separator and others as a character: two meanings, so neither. Other characters
   RFC 3986 leaves out of a path (``" < > ^ ` { | } [ ]``) are percent-encoded.
2. Percent-encoding: ``%`` must be followed by two hex digits. Encoded unreserved
   characters (ALPHA DIGIT ``- . _ ~``) are decoded (6.2.2.2: they mean the same); all
   others stay encoded with upper-case hex (6.2.2.1), and are never decoded twice
   (``%252e`` is the three characters ``%2e``, not a dot). Encoded ``/`` and ``\\``
   (``%2F``, ``%5C``) and NUL (``%00``) follow the listener's ``paths`` settings.
3. Segments: ``//`` is merged into ``/`` (by setting), and dot segments are removed
   (5.2.4), an encoded dot included since step 2 decoded it. A segment whose name before
   a ``;`` is empty, ``.`` or ``..`` (``/..;/``, ``/;x/``) is refused: servlet containers
   strip path parameters before resolving dots, so to them it is a dot segment.
Case is kept: paths are case-sensitive (6.2.2.1 folds only scheme, host and hex digits).
"""

from __future__ import annotations

import re

ESCAPED_SLASH_ACTIONS = ("reject", "keep", "unescape")
ESCAPED_NUL_ACTIONS = ("reject", "keep")


class PathRefused(ValueError):
    """A path with no single meaning: answered 400, never forwarded."""


_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# A path already in normal form, checked in one pass of the regex engine: segments of
# pchar without '%' and ';' (those take the long way), none of them empty, '.' or '..'.
NORMAL_PATH = re.compile(rb"(?:/(?!\.\.?(?:/|\Z))[-A-Za-z0-9._~!$&'()*+,=:@]+)*/?")
# Bytes no path may hold raw (step 1).
_REFUSED_RAW = re.compile(rb"[^\x21-\x7e]|[#\\]")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_SEPARATOR_ESCAPE = re.compile(rb"%(?:2[Ff]|5[Cc])")
_NUL_ESCAPE = b"%00"
# Two hex digits (either case) -> what their escape becomes: the unreserved character
# itself, else the escape with upper-case digits.
_ESCAPES: dict[bytes, bytes] = {}
for _high in b"0123456789ABCDEFabcdef":
    for _low in b"0123456789ABCDEFabcdef":
        _digits = bytes((_high, _low))
        _octet = int(_digits, 16)
        _ESCAPES[_digits] = bytes((_octet,)) if _octet in _UNRESERVED else b"%" + _digits.upper()
# Printable characters RFC 3986 keeps out of a path: sent on percent-encoded.
_ENCODED_RAW = tuple((bytes((c,)), b"%%%02X" % c) for c in b'"<>^`{|}[]')
_MORE_SLASHES = re.compile(rb"//+")
# A segment whose name before ';' is empty, '.' or '..'.
_PARAMETER_ON_DOTS = re.compile(rb"/\.{0,2};")

# Every step below is a pass of C code over the path (regex, split, replace), or a Python
# step per escape or per '..' segment at most, so a path an attacker makes long costs about
# what as many header bytes cost to parse.


def normalise_path(
    path: bytes,
    *,
    merge_slashes: bool = True,
    escaped_slashes: str = "reject",
    escaped_nul: str = "reject",
) -> bytes:
    """The normal form of ``path`` (which starts with ``/``), or PathRefused saying why."""
    if NORMAL_PATH.fullmatch(path) is not None:
        return path  # the common case: nothing to decode, merge or resolve
    if _REFUSED_RAW.search(path) is not None:
        raise PathRefused("a character that a path cannot hold")
    if b"%" in path:
        path = _decode_unreserved(path, escaped_slashes, escaped_nul)
    for raw, escaped in _ENCODED_RAW:
        if raw in path:
            path = path.replace(raw, escaped)
    if b";" in path and _PARAMETER_ON_DOTS.search(path) is not None:
        raise PathRefused("a path parameter on an empty or dot segment")
    if merge_slashes and b"//" in path:
        path = _MORE_SLASHES.sub(b"/", path)
    if b"/." in path:
        path = _remove_dot_segments(path)
    return path


def _decode_unreserved(path: bytes, escaped_slashes: str, escaped_nul: str) -> bytes:
    if _BAD_ESCAPE.search(path) is not None:
        raise PathRefused("a '%' not followed by two hex digits")
    if _SEPARATOR_ESCAPE.search(path) is not None:
        if escaped_slashes == "reject":
            raise PathRefused("an encoded '/' or '\\'")
        if escaped_slashes == "unescape":
            # Both are separators to the servers that decode them. (No new escape can
            # form: each '%' is followed by its own two hex digits.)
            for escape in (b"%2F", b"%2f", b"%5C", b"%5c"):
                path = path.replace(escape, b"/")
    if escaped_nul == "reject" and _NUL_ESCAPE in path:
        raise PathRefused("an encoded NUL")
    pieces = path.split(b"%")
    escapes = _ESCAPES
    return pieces[0] + b"".join([escapes[piece[:2]] + piece[2:] for piece in pieces[1:]])


def _remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 5.2.4 on a path without encoded dots (decoded before)."""
    while b"/./" in path:
        path = path.replace(b"/./", b"/")
    if path.endswith(b"/."):
        path = path[:-1]
    if b"/.." not in path:
        return path
    segments = path.split(b"/")
    out: list[bytes] = []
    for segment in segments[1:]:
        if segment == b"..":
            if out:
                out.pop()
        else:
            out.append(segment)
    if segments[-1] == b"..":
        out.append(b"")  # "/a/b/.." is "/a/": the directory, as a browser resolves it
    return b"/" + b"/".join(out)


def is_normal(path: str) -> bool:
    """Whether a route path from the config is already in normal form (empty segments
    and encoded separators allowed, for listeners that keep them)."""
    try:
        raw = path.encode("ascii")
        return (
            normalise_path(raw, merge_slashes=False, escaped_slashes="keep", escaped_nul="keep")
            == raw
        )
    except (UnicodeEncodeError, PathRefused):
        return False


def normal_form_hint(path: str) -> str | None:
    """What a config path should be written as, or None if it has no normal form."""
    raw = path.encode("utf-8")
    raw = re.sub(rb"[\x80-\xff]", lambda m: b"%%%02X" % m.group()[0], raw)
    try:
        fixed = normalise_path(raw, merge_slashes=False, escaped_slashes="keep", escaped_nul="keep")
    except PathRefused:
        return None
    return fixed.decode("ascii")
