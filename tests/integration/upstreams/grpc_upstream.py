"""A real grpcio server for the gRPC tests, without generated code: methods are generic
handlers on raw bytes, so no protoc step is needed.

Services ``test.Echo``, ``test.Limited``, ``test.Short`` and ``test.Blind`` (the same
methods; the gateway routes them differently):
  Unary          echoes the request
  ServerStream   request b"N": answers N messages b"item-0" ... b"item-(N-1)"
  ClientStream   answers b"<messages>:<total bytes>"
  Bidi           answers each message upper-cased, as it arrives
  Fail           aborts with NOT_FOUND and a message that needs percent-encoding
  Slow           request b"<seconds>": sleeps, notes its deadline and whether it was cancelled
  SlowStream     one message, then sleeps as Slow does, then a second message
  LateStream     request b"<seconds>:<N>": sleeps, then answers N messages (a watch whose
                 first event comes late: grpcio sends the response head with it)
  QuietBidi      request b"<N>:<seconds apart>": reads one message, then answers N
                 messages while the client's side stays open and quiet
  Stats          JSON: what Slow saw (time remaining at its start, cancellations)
  SetHealth      request b"<service>=<SERVING|NOT_SERVING>": sets the health servicer
Plus grpc.health.v1.Health (grpcio-health-checking's servicer).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

MAX_MESSAGE = 16 * 1024 * 1024
SERVICES = ("test.Echo", "test.Limited", "test.Short", "test.Blind")
FAIL_MESSAGE = "no such thing: 100% ünïcode"

_stats_lock = threading.Lock()
_stats = {"slow_started": 0, "slow_cancelled": 0, "time_remaining": None}


def _identity(data: bytes) -> bytes:
    return data


def unary(request: bytes, context) -> bytes:
    return request


def server_stream(request: bytes, context):
    for index in range(int(request)):
        yield b"item-%d" % index


def client_stream(requests, context) -> bytes:
    count = total = 0
    for message in requests:
        count += 1
        total += len(message)
    return b"%d:%d" % (count, total)


def bidi(requests, context):
    for message in requests:
        yield message.upper()


def fail(request: bytes, context) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, FAIL_MESSAGE)


def _sleep_watching(seconds: float, context) -> None:
    with _stats_lock:
        _stats["slow_started"] += 1
        _stats["time_remaining"] = context.time_remaining()
    cancelled = threading.Event()
    context.add_callback(cancelled.set)
    if cancelled.wait(seconds) or not context.is_active():
        with _stats_lock:
            _stats["slow_cancelled"] += 1


def slow(request: bytes, context) -> bytes:
    _sleep_watching(float(request), context)
    return b"slept"


def slow_stream(request: bytes, context):
    yield b"first"
    _sleep_watching(float(request), context)
    yield b"second"


def late_stream(request: bytes, context):
    delay, _, count = request.partition(b":")
    time.sleep(float(delay))
    for index in range(int(count)):
        yield b"event-%d" % index


def quiet_bidi(requests, context):
    count, _, apart = next(requests).partition(b":")
    for index in range(int(count)):
        yield b"tick-%d" % index
        time.sleep(float(apart))


def stats(request: bytes, context) -> bytes:
    with _stats_lock:
        return json.dumps(_stats).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("test.Echo", health_pb2.HealthCheckResponse.SERVING)

    def set_health(request: bytes, context) -> bytes:
        service, _, status = request.decode().partition("=")
        health_servicer.set(service, health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        return b"ok"

    def methods() -> dict:
        plain = {"request_deserializer": _identity, "response_serializer": _identity}
        return {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **plain),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **plain),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **plain),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **plain),
            "Fail": grpc.unary_unary_rpc_method_handler(fail, **plain),
            "Slow": grpc.unary_unary_rpc_method_handler(slow, **plain),
            "SlowStream": grpc.unary_stream_rpc_method_handler(slow_stream, **plain),
            "LateStream": grpc.unary_stream_rpc_method_handler(late_stream, **plain),
            "QuietBidi": grpc.stream_stream_rpc_method_handler(quiet_bidi, **plain),
            "Stats": grpc.unary_unary_rpc_method_handler(stats, **plain),
            "SetHealth": grpc.unary_unary_rpc_method_handler(set_health, **plain),
        }

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ],
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(name, methods()) for name in SERVICES]
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
