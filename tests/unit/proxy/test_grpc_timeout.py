"""grpc-timeout: parsing (H M S m u n, at most 8 digits) and encoding what is left."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispa.proxy.grpc.timeout import (
    encode_grpc_timeout,
    grpc_timeout_header,
    parse_grpc_timeout,
    with_grpc_timeout,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"1H", 3600.0),
        (b"2M", 120.0),
        (b"5S", 5.0),
        (b"100m", 0.1),
        (b"250u", 250e-6),
        (b"7n", 7e-9),
        (b"99999999S", 99_999_999.0),
        (b"0m", 0.0),
    ],
)
def test_parse(value: bytes, seconds: float) -> None:
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [b"", b"S", b"10", b"10s", b"10 S", b"-1S", b"1.5S", b"123456789S", b"10SS", b"\xffS"],
)
def test_parse_refuses_malformed(value: bytes) -> None:
    with pytest.raises(ValueError):
        parse_grpc_timeout(value)


@pytest.mark.parametrize(
    ("seconds", "encoded"),
    [
        (0.05, b"50000000n"),
        (1.0, b"1000000u"),
        (10.0, b"10000000u"),
        (3600.0, b"3600000m"),
        (200_000.0, b"200000S"),
        (0.0, b"1n"),  # never zero: the upstream gets at least one unit
        (-1.0, b"1n"),
        (1e12, b"99999999H"),
    ],
)
def test_encode(seconds: float, encoded: bytes) -> None:
    assert encode_grpc_timeout(seconds) == encoded


@given(st.floats(min_value=1e-9, max_value=1e9))
def test_encoded_never_exceeds_what_is_left(seconds: float) -> None:
    encoded = encode_grpc_timeout(seconds)
    assert len(encoded) <= 9
    decoded = parse_grpc_timeout(encoded)
    assert decoded <= seconds * (1 + 1e-9) or decoded == pytest.approx(1e-9)
    assert decoded >= seconds * 0.99 - 1e-9  # 8 digits keep the precision


def test_header_lookup() -> None:
    headers = [(b"Content-Type", b"application/grpc"), (b"grpc-timeout", b" 5S ")]
    assert grpc_timeout_header(headers) == (True, b"5S")
    assert grpc_timeout_header([(b"content-type", b"text/plain")]) == (False, None)
    assert grpc_timeout_header([(b"content-type", b"application/grpc")]) == (True, None)


def test_with_grpc_timeout_replaces_only_that_header() -> None:
    headers = [(b"te", b"trailers"), (b"Grpc-Timeout", b"10S"), (b"x", b"y")]
    assert with_grpc_timeout(headers, 2.5) == [
        (b"te", b"trailers"),
        (b"Grpc-Timeout", b"2500000u"),
        (b"x", b"y"),
    ]
