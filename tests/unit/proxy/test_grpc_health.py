"""grpc.health.v1 messages, encoded and decoded by hand, checked against protobuf's own."""

from __future__ import annotations

import pytest

from dispa.proxy.grpc.health import (
    GrpcHealthError,
    decode_check_response,
    encode_check_request,
    judge,
)

health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")


def frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


@pytest.mark.parametrize("service", ["", "my.Service", "ü" * 100])
def test_request_matches_protobuf(service: str) -> None:
    expected = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    assert encode_check_request(service) == frame(expected)


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_response_decodes_protobuf(status: int) -> None:
    message = health_pb2.HealthCheckResponse(status=status).SerializeToString()
    assert decode_check_response(frame(message)) == status


def test_unknown_fields_are_skipped() -> None:
    # field 2 (length-delimited "ab"), field 3 (varint 300), then status = SERVING
    message = b"\x12\x02ab" + b"\x18\xac\x02" + b"\x08\x01"
    assert decode_check_response(frame(message)) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x00\x00",
        b"\x01\x00\x00\x00\x02\x08\x01",
        b"\x00\x00\x00\x00\x05\x08",
        b"\x00\x00\x00\x00\x01\x08",
    ],
)
def test_malformed_responses(body: bytes) -> None:
    with pytest.raises(GrpcHealthError):
        decode_check_response(body)


def test_judge() -> None:
    serving = frame(health_pb2.HealthCheckResponse(status=1).SerializeToString())
    not_serving = frame(health_pb2.HealthCheckResponse(status=2).SerializeToString())
    judge(b"0", None, serving)
    with pytest.raises(GrpcHealthError, match="NOT_SERVING"):
        judge(b"0", None, not_serving)
    with pytest.raises(GrpcHealthError, match="grpc-status 5 unknown service"):
        judge(b"5", b"unknown%20service", b"")
    with pytest.raises(GrpcHealthError, match="no grpc-status"):
        judge(None, None, serving)
