"""The normal form of a request path (RFC 3986 6.2.2): a corpus, and properties checked
against a reference written from the RFC's own words, one character at a time."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.config.paths import PathRefused, is_normal, normal_form_hint, normalise_path

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
PCHAR_RAW = set(UNRESERVED + "!$&'()*+,;=:@/")
ENCODED_RAW = set('"<>^`{|}[]')


def normal(path: bytes, **rules) -> bytes:
    return normalise_path(path, **rules)


# ---------------------------------------------------------------- corpus

CORPUS = [
    (b"/", b"/"),
    (b"/a/b", b"/a/b"),
    (b"/a/b/", b"/a/b/"),
    (b"//admin", b"/admin"),
    (b"///a////b//", b"/a/b/"),
    (b"/./admin", b"/admin"),
    (b"/%61dmin", b"/admin"),
    (b"/x/../admin", b"/admin"),
    (b"/%2e/admin", b"/admin"),
    (b"/.%2e/admin", b"/admin"),
    (b"/%2E%2E/admin", b"/admin"),
    (b"/admin/../admin", b"/admin"),
    (b"/a/b/..", b"/a/"),
    (b"/a/b/.", b"/a/b/"),
    (b"/..", b"/"),
    (b"/../../a", b"/a"),
    (b"/a/./b/../../c", b"/c"),
    (b"/a/.../b", b"/a/.../b"),
    (b"/a/..b/.c", b"/a/..b/.c"),
    (b"/.well-known/acme", b"/.well-known/acme"),
    (b"/%252e/admin", b"/%252e/admin"),  # %25 is '%': the segment is "%2e", not a dot
    (b"/%25252e", b"/%25252e"),
    (b"/caf%c3%a9", b"/caf%C3%A9"),
    (b"/a%3bb", b"/a%3Bb"),
    (b"/%7e%7E%41%5f%2D", b"/~~A_-"),
    (b"/a|b", b"/a%7Cb"),
    (b'/"<>^`{|}[]', b"/%22%3C%3E%5E%60%7B%7C%7D%5B%5D"),
    (b"/files;v=2/doc", b"/files;v=2/doc"),
    (b"/admin;x", b"/admin;x"),
    (b"/a:b@c!$&'()*+,=", b"/a:b@c!$&'()*+,="),
    (b"/ADMIN", b"/ADMIN"),
]


@pytest.mark.parametrize(("path", "expected"), CORPUS, ids=lambda p: p.decode("latin-1"))
def test_corpus(path, expected):
    assert normal(path) == expected


REFUSED = [
    b"/admin%2f",
    b"/%2Fadmin",
    b"/x%5c..%5cadmin",
    b"/admin%00",
    b"/a\\b",
    b"/a#b",
    b"/a b",
    b"/a\tb",
    b"/a\x00b",
    b"/a\x7fb",
    b"/caf\xc3\xa9",
    b"/%",
    b"/%2",
    b"/%zz",
    b"/%%41",
    b"/x/..;/admin",
    b"/x/%2e%2e;/admin",
    b"/x/.;/admin",
    b"/;/admin",
    b"/a/;jsessionid=1",
]


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: p.decode("latin-1"))
def test_refused(path):
    with pytest.raises(PathRefused):
        normal(path)


def test_escaped_slashes_kept_or_unescaped_by_setting():
    assert normal(b"/a%2fb%5C", escaped_slashes="keep") == b"/a%2Fb%5C"
    assert normal(b"/x%2F..%2Fadmin", escaped_slashes="keep") == b"/x%2F..%2Fadmin"
    # Unescaped, they are separators like any other: merged and resolved.
    assert normal(b"/x%2F..%2Fadmin", escaped_slashes="unescape") == b"/admin"
    assert normal(b"/a%2f%2Fb%5cc", escaped_slashes="unescape") == b"/a/b/c"
    assert normal(b"/a%2f%2Fb", escaped_slashes="unescape", merge_slashes=False) == b"/a//b"


def test_escaped_nul_kept_by_setting():
    assert normal(b"/a%00b", escaped_nul="keep") == b"/a%00b"


def test_empty_segments_kept_when_not_merging():
    assert normal(b"//a//b/", merge_slashes=False) == b"//a//b/"
    assert normal(b"/a//../b", merge_slashes=False) == b"/a/b"
    assert normal(b"/a/..//b", merge_slashes=False) == b"//b"


# ---------------------------------------------------------------- a reference, from the RFC


def reference(path: bytes, merge_slashes, escaped_slashes, escaped_nul) -> bytes | None:
    """The same steps as paths.py's docstring, written naively: None means refused."""
    text = path.decode("latin-1")
    out = ""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            digits = text[index + 1 : index + 3]
            if len(digits) < 2 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                return None
            decoded = chr(int(digits, 16))
            if decoded in UNRESERVED:
                out += decoded
            elif decoded in "/\\":
                if escaped_slashes == "reject":
                    return None
                out += "/" if escaped_slashes == "unescape" else "%" + digits.upper()
            elif decoded == "\x00":
                if escaped_nul == "reject":
                    return None
                out += "%00"
            else:
                out += "%" + digits.upper()
            index += 3
            continue
        if char in PCHAR_RAW:
            out += char
        elif char in ENCODED_RAW:
            out += f"%{ord(char):02X}"
        else:
            return None
        index += 1
    for segment in out.split("/"):
        if ";" in segment and segment.split(";")[0] in ("", ".", ".."):
            return None
    if merge_slashes:
        while "//" in out:
            out = out.replace("//", "/")
    return remove_dot_segments(out).encode("latin-1")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, step by step as written there."""
    source, output = path, ""
    while source:
        if source.startswith("../"):
            source = source[3:]
        elif source.startswith("./"):
            source = source[2:]
        elif source.startswith("/./"):
            source = "/" + source[3:]
        elif source == "/.":
            source = "/"
        elif source.startswith("/../") or source == "/..":
            source = "/" + source[4:]
            output = output[: output.rfind("/")] if "/" in output else ""
        elif source in (".", ".."):
            source = ""
        else:
            end = source.find("/", 1)
            end = len(source) if end < 0 else end
            output, source = output + source[:end], source[end:]
    return output


PIECES = [
    "/", "/", "/", ".", "..", "%2e", "%2E", "%2e%2e", "%2f", "%2F", "%5c", "%00", "%41",
    "%7e", "%7E", "%25", "%3b", "%3B", "%c3", "%zz", "%", "a", "b", "ab", ";", ";x", "|",
    "\\", "#", "~", "-", ":", "@", " ", "[", "\x7f",
]  # fmt: skip
paths = st.lists(st.sampled_from(PIECES), max_size=14).map(lambda p: ("/" + "".join(p)).encode())
rules = st.fixed_dictionaries(
    {
        "merge_slashes": st.booleans(),
        "escaped_slashes": st.sampled_from(["reject", "keep", "unescape"]),
        "escaped_nul": st.sampled_from(["reject", "keep"]),
    }
)


def attempt(path: bytes, rules: dict) -> bytes | None:
    try:
        return normal(path, **rules)
    except PathRefused:
        return None


@settings(max_examples=300, deadline=None)
@given(paths, rules)
def test_matches_the_reference(path, rules):
    assert attempt(path, rules) == reference(path, **rules)


@settings(max_examples=200, deadline=None)
@given(paths, rules)
def test_normalising_twice_is_normalising_once(path, rules):
    once = attempt(path, rules)
    if once is not None:
        assert normal(once, **rules) == once


@settings(max_examples=200, deadline=None)
@given(paths, rules)
def test_the_normal_form_has_no_dot_segments_nor_ambiguous_bytes(path, rules):
    result = attempt(path, rules)
    if result is None:
        return
    assert result.startswith(b"/")
    segments = result.split(b"/")[1:]
    assert b"." not in segments and b".." not in segments
    if rules["merge_slashes"]:
        assert b"//" not in result
    for escape in re.findall(rb"%(..)", result):
        assert escape == escape.upper()
        assert chr(int(escape, 16)) not in UNRESERVED
    assert set(result.decode("ascii")) <= PCHAR_RAW | {"%"} | set("0123456789ABCDEF")


@settings(max_examples=200, deadline=None)
@given(paths, rules, st.randoms(use_true_random=False))
def test_encoding_unreserved_characters_never_changes_the_meaning(path, rules, random):
    """What a route sees is the same however many unreserved characters a client encodes,
    and in whichever case."""
    spelled = b""
    for index, byte in enumerate(path):
        in_escape = b"%" in path[max(0, index - 2) : index]  # the digits of an escape
        if chr(byte) in UNRESERVED and not in_escape and random.random() < 0.5:
            escape = b"%%%02X" % byte
            spelled += escape.lower() if random.random() < 0.5 else escape
        else:
            spelled += bytes((byte,))
    assert attempt(spelled, rules) == attempt(path, rules)


# ---------------------------------------------------------------- config paths


def test_config_paths_must_be_in_normal_form():
    assert is_normal("/api/v1/")
    assert is_normal("/a%2Fb")  # for listeners that keep encoded slashes
    assert is_normal("/a//b")  # for listeners that keep empty segments
    assert not is_normal("/%61dmin")
    assert not is_normal("/a/./b")
    assert not is_normal("/caf\u00e9")
    assert normal_form_hint("/%61dmin") == "/admin"
    assert normal_form_hint("/caf\u00e9") == "/caf%C3%A9"
    assert normal_form_hint("/a\\b") is None


# ---------------------------------------------------------------- cost


@pytest.mark.parametrize(
    "path",
    [
        b"/" + b"%41" * 21000,
        b"/." * 32000,
        b"/a/.." * 13000,
        b"/" * 64000,
        b"/%2e%2e" * 9000,
        b"/|" * 32000,
        b"/a/%2e/.//b/.." * 4500,
        b"/" + b"a" * 63000 + b"%41",
    ],
    ids=["escapes", "dots", "up", "slashes", "encoded-dots", "raw", "mixed", "long-segment"],
)
def test_a_head_sized_path_costs_little(path):
    """A path as long as a whole request head may be normalises in a few ms (C passes,
    and Python work per escape or '..' at most): well under a second even on a busy CI."""
    started = time.perf_counter()
    normal(path)
    assert time.perf_counter() - started < 0.5
