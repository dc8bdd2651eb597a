"""An active health probe speaking the gRPC health checking protocol (grpc.health.v1).

One unary call, ``/grpc.health.v1.Health/Check`` for ``config.service``, on a fresh
prior-knowledge h2c connection (as http2/probe.py's GET), within ``config.timeout``. Healthy
only when the call ends with grpc-status 0 and the answer says SERVING. The two messages
are one field each, so they are encoded here by hand: no protobuf at run time.
"""

from __future__ import annotations

import asyncio

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)

from dispa.config.schema import HealthCheck
from dispa.proxy.grpc.status import decode_grpc_message
from dispa.proxy.grpc.timeout import encode_grpc_timeout
from dispa.proxy.upstream.endpoint import Endpoint

CHECK_PATH = b"/grpc.health.v1.Health/Check"
# HealthCheckResponse.ServingStatus
SERVING_STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVING = 1


class GrpcHealthError(Exception):
    """The endpoint is not SERVING, or the call failed; the text says which."""


# ---------------------------------------------------------------- messages (pure)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data) or shift > 63:
            raise GrpcHealthError("malformed HealthCheckResponse")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index


def encode_check_request(service: str) -> bytes:
    """HealthCheckRequest{service} in a gRPC frame (uncompressed flag, 4-byte length)."""
    message = b""
    if service:  # proto3 leaves a field at its default ("") out
        name = service.encode("utf-8")
        message = b"\x0a" + _varint(len(name)) + name  # field 1, length-delimited
    return b"\x00" + len(message).to_bytes(4, "big") + message


def decode_check_response(body: bytes) -> int:
    """The ServingStatus of the first gRPC frame of ``body`` (a HealthCheckResponse)."""
    if len(body) < 5:
        raise GrpcHealthError("no HealthCheckResponse in the answer")
    if body[0] != 0:
        raise GrpcHealthError("compressed HealthCheckResponse (none was asked for)")
    size = int.from_bytes(body[1:5], "big")
    message = body[5 : 5 + size]
    if len(message) < size:
        raise GrpcHealthError("truncated HealthCheckResponse")
    status = 0  # proto3: an absent enum field is its zero value, UNKNOWN
    index = 0
    while index < len(message):
        key, index = _read_varint(message, index)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, index = _read_varint(message, index)
            if field == 1:
                status = value
        elif wire_type == 2:
            length, index = _read_varint(message, index)
            index += length
        elif wire_type == 1:
            index += 8
        elif wire_type == 5:
            index += 4
        else:
            raise GrpcHealthError("malformed HealthCheckResponse")
    return status


def judge(grpc_status: bytes | None, grpc_message: bytes | None, body: bytes) -> None:
    """Nothing when the call says SERVING; GrpcHealthError saying why not otherwise."""
    if grpc_status is None:
        raise GrpcHealthError("no grpc-status in the answer")
    if grpc_status != b"0":
        detail = decode_grpc_message(grpc_message) if grpc_message else ""
        raise GrpcHealthError(f"grpc-status {grpc_status.decode('latin-1')} {detail}".strip())
    status = decode_check_response(body)
    if status != SERVING:
        raise GrpcHealthError(SERVING_STATUS_NAMES.get(status, f"serving status {status}"))


# ---------------------------------------------------------------- the probe (I/O)


async def probe_grpc_health(endpoint: Endpoint, config: HealthCheck, authority: str) -> int:
    """One Health/Check call; returns the HTTP status (200) when SERVING, else raises."""
    h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    h2.initiate_connection()
    stream_id = h2.get_next_available_stream_id()
    h2.send_headers(
        stream_id,
        [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", authority.encode("latin-1")),
            (b":path", CHECK_PATH),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"grpc-timeout", encode_grpc_timeout(config.timeout)),
            (b"user-agent", b"dispa-health"),
        ],
    )
    h2.send_data(stream_id, encode_check_request(config.service), end_stream=True)
    status = 0
    fields: dict[bytes, bytes] = {}  # grpc-status and grpc-message, headers or trailers
    body = bytearray()
    async with asyncio.timeout(config.timeout):
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        try:
            writer.write(h2.data_to_send())
            while True:
                data = await reader.read(65536)
                if not data:
                    raise GrpcHealthError("connection closed before the call ended")
                for event in h2.receive_data(data):
                    if getattr(event, "stream_id", stream_id) != stream_id:
                        continue
                    if isinstance(event, ResponseReceived | TrailersReceived):
                        for name, value in event.headers:
                            if name == b":status":
                                status = int(value)
                            elif name in (b"grpc-status", b"grpc-message"):
                                fields[name] = value
                    elif isinstance(event, DataReceived):
                        body += event.data
                        h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    elif isinstance(event, StreamEnded):
                        h2.close_connection()
                        writer.write(h2.data_to_send())
                        if status != 200:
                            raise GrpcHealthError(f"HTTP status {status}")
                        judge(fields.get(b"grpc-status"), fields.get(b"grpc-message"), body)
                        return status
                    elif isinstance(event, StreamReset | ConnectionTerminated):
                        raise GrpcHealthError(f"{type(event).__name__} before the call ended")
                writer.write(h2.data_to_send())  # SETTINGS acknowledgements, PINGs
        finally:
            writer.close()
