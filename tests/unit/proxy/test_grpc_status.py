"""gRPC local replies: status mapping, grpc-message encoding, the trailers-only form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispa.proxy import local_reply as reasons
from dispa.proxy.grpc import status as codes
from dispa.proxy.grpc.status import (
    decode_grpc_message,
    encode_grpc_message,
    grpc_local_reply,
    grpc_status_for,
    is_grpc,
)
from dispa.proxy.local_reply import error_reply


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (404, reasons.NO_ROUTE, codes.UNIMPLEMENTED),
        (502, reasons.UPSTREAM_CONNECT, codes.UNAVAILABLE),
        (503, reasons.NO_HEALTHY, codes.UNAVAILABLE),
        (503, reasons.CIRCUIT_OPEN, codes.UNAVAILABLE),
        (504, reasons.UPSTREAM_TIMEOUT, codes.DEADLINE_EXCEEDED),
        (504, reasons.GRPC_DEADLINE, codes.DEADLINE_EXCEEDED),
        (504, reasons.NOT_CACHED, codes.UNAVAILABLE),
        (429, reasons.RATE_LIMITED, codes.RESOURCE_EXHAUSTED),
        (413, reasons.BODY_TOO_LARGE, codes.RESOURCE_EXHAUSTED),
        (431, reasons.HEADER_TOO_LARGE, codes.RESOURCE_EXHAUSTED),
        (400, reasons.MALFORMED, codes.INTERNAL),
        (400, reasons.GRPC_BAD_TIMEOUT, codes.INTERNAL),
        (401, "unauthorized", codes.UNAUTHENTICATED),
        (403, "forbidden", codes.PERMISSION_DENIED),
        (408, reasons.CLIENT_TIMEOUT, codes.DEADLINE_EXCEEDED),
        (500, "internal_error", codes.INTERNAL),
        (501, reasons.UNSUPPORTED_UPGRADE, codes.UNIMPLEMENTED),
        (418, "teapot", codes.UNKNOWN),
        (302, "redirect", codes.UNKNOWN),
    ],
)
def test_status_mapping(status: int, reason: str, code: int) -> None:
    assert grpc_status_for(status, reason) == code


def test_trailers_only_reply_keeps_the_reason() -> None:
    answer = grpc_local_reply(error_reply(503, reasons.NO_HEALTHY))
    assert answer.status == 200
    assert answer.reason == reasons.NO_HEALTHY  # logs and metrics keep their names
    assert answer.body == b""
    assert answer.trailers_only
    assert answer.headers == (
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"14"),
        (b"grpc-message", b"no healthy endpoint"),
    )


@pytest.mark.parametrize(
    ("content_type", "grpc"),
    [
        (b"application/grpc", True),
        (b"application/grpc+proto", True),
        (b"Application/GRPC; charset=utf-8", True),
        (b"application/grpc-web", False),  # gRPC-Web is another protocol
        (b"application/json", False),
        (b"application/grp", False),
    ],
)
def test_is_grpc(content_type: bytes, grpc: bool) -> None:
    assert is_grpc([(b"Content-Type", content_type)]) is grpc
    assert is_grpc([(b"accept", b"*/*")]) is False


@pytest.mark.parametrize(
    ("message", "encoded"),
    [
        ("no route", b"no route"),
        ("100% sure", b"100%25 sure"),
        ("ünï", b"%C3%BCn%C3%AF"),
        ("line\nbreak\t", b"line%0Abreak%09"),
        ("~!$&'()", b"~!$&'()"),
        ("\x7f", b"%7F"),
    ],
)
def test_grpc_message_percent_encoding(message: str, encoded: bytes) -> None:
    assert encode_grpc_message(message) == encoded
    assert decode_grpc_message(encoded) == message


@given(st.text())
def test_grpc_message_round_trip(message: str) -> None:
    encoded = encode_grpc_message(message)
    assert all(0x20 <= byte <= 0x7E for byte in encoded)
    assert decode_grpc_message(encoded) == message.encode("utf-8", "replace").decode(
        "utf-8", "replace"
    )


def test_malformed_escapes_are_kept() -> None:
    assert decode_grpc_message(b"50%") == "50%"
    assert decode_grpc_message(b"%zz!") == "%zz!"
