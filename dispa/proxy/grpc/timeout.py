"""gRPC deadlines: the ``grpc-timeout`` request header, read and written. Pure functions.

"gRPC over HTTP2": ``grpc-timeout = TimeoutValue TimeoutUnit``, the value at most 8
ASCII digits, the unit one of H M S m u n. Dispa takes it as the request's deadline and
forwards what is left of it, so the upstream does not work past the point where the
client has given up.
"""

from __future__ import annotations

from dispa.proxy.grpc.status import is_grpc_content_type

_UNIT_SECONDS = {
    ord("H"): 3600.0,
    ord("M"): 60.0,
    ord("S"): 1.0,
    ord("m"): 1e-3,
    ord("u"): 1e-6,
    ord("n"): 1e-9,
}
# Finest first: the remaining time keeps as much precision as 8 digits allow.
_ENCODE_UNITS = (
    (b"n", 1e9),
    (b"u", 1e6),
    (b"m", 1e3),
    (b"S", 1.0),
    (b"M", 1 / 60),
    (b"H", 1 / 3600),
)
_MAX_VALUE = 99_999_999


def parse_grpc_timeout(value: bytes) -> float:
    """Seconds from a grpc-timeout value; ValueError when it is not one."""
    digits = value[:-1]
    unit = _UNIT_SECONDS.get(value[-1]) if value else None
    if unit is None or not 1 <= len(digits) <= 8 or not digits.isdigit():
        raise ValueError(f"malformed grpc-timeout {value[:20]!r}")
    return int(digits) * unit


def encode_grpc_timeout(seconds: float) -> bytes:
    """A grpc-timeout value for ``seconds`` (rounded down, never below one unit)."""
    for unit, per_second in _ENCODE_UNITS:
        value = int(seconds * per_second)
        if value <= _MAX_VALUE:
            return b"%d%s" % (max(value, 1), unit)
    return b"%dH" % _MAX_VALUE


def grpc_timeout_header(headers) -> tuple[bool, bytes | None]:
    """(is the request gRPC, its grpc-timeout value or None), in one pass."""
    grpc = False
    timeout = None
    for name, value in headers:
        size = len(name)
        if size == 12 and name.lower() == b"content-type":
            grpc = is_grpc_content_type(value)
        elif size == 12 and name.lower() == b"grpc-timeout":
            timeout = value.strip()
    return grpc, timeout


def with_grpc_timeout(headers, seconds: float) -> list[tuple[bytes, bytes]]:
    """The headers with grpc-timeout set to what is left of the deadline."""
    remaining = encode_grpc_timeout(seconds)
    return [
        (name, remaining) if len(name) == 12 and name.lower() == b"grpc-timeout" else (name, value)
        for name, value in headers
    ]
