"""gRPC through Dispa: a real grpcio server (upstreams/grpc_upstream.py) behind an h2
upstream, real grpcio clients over h2c, and the h2 library over a raw socket where a test
needs to see the frames (a trailers-only reply, a grpc-timeout with no client deadline)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from conftest import HOST, PYTHON, Gateway, Processes, can_connect, free_port, make_config
from support import wait_until
from test_h2_upstream import H2Upstream, TrailerSocket

from dispa.proxy.grpc.timeout import parse_grpc_timeout

GRPC_UPSTREAM = Path(__file__).resolve().parent / "upstreams" / "grpc_upstream.py"
MAX_MESSAGE = 16 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.enable_retries", 0),
]


class GrpcUpstream:
    def __init__(self, processes: Processes, name: str) -> None:
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        argv = [PYTHON, str(GRPC_UPSTREAM), "--port", str(self.port)]
        self.process = processes.start(argv, f"grpc-upstream-{name}")
        wait_until(lambda: can_connect(self.port), what=f"grpc upstream {name} to listen")
        self.channel = grpc.insecure_channel(self.address)

    def call(self, method: str, request: bytes = b"") -> bytes:
        """Straight to the upstream, not through the gateway."""
        return unary(self.channel, method)(request, timeout=5)

    def stats(self) -> dict:
        return json.loads(self.call("/test.Echo/Stats"))

    def set_health(self, service: str, status: str) -> None:
        self.call("/test.Echo/SetHealth", f"{service}={status}".encode())


def _identity(data: bytes) -> bytes:
    return data


def unary(channel, method: str):
    return channel.unary_unary(
        method, request_serializer=_identity, response_deserializer=_identity
    )


def grpc_config(upstream: GrpcUpstream, plain: H2Upstream | None = None, **options) -> dict:
    app = {"name": "app", "protocol": "h2", "endpoints": [{"address": upstream.address}]}
    dead = {"name": "dead", "protocol": "h2", "endpoints": [{"address": f"{HOST}:{free_port()}"}]}
    # A plain h2 upstream (no gRPC): it ignores grpc-timeout and shows what it was sent.
    plain_address = plain.address if plain is not None else f"{HOST}:{free_port()}"
    h2 = {"name": "plain", "protocol": "h2", "endpoints": [{"address": plain_address}]}
    return make_config(
        upstreams=[{**app, **options}, {**dead, "retry": {"attempts": 1}}, h2],
        routes=[
            {"match": {"path_prefix": "/h2/"}, "upstream": "plain", "prefix_rewrite": "/"},
            {"match": {"path_prefix": "/test.Echo/"}, "upstream": "app"},
            {
                "match": {"path_prefix": "/test.Limited/"},
                "upstream": "app",
                "filters": [{"type": "local_rate_limit", "key": "route", "rate": 0.01, "burst": 1}],
            },
            {"match": {"path_prefix": "/test.Short/"}, "upstream": "app", "timeout": "300ms"},
            # The upstream does not hear the client's deadline: only Dispa can end the call.
            {
                "match": {"path_prefix": "/test.Blind/"},
                "upstream": "app",
                "headers": {"request_remove": ["grpc-timeout"]},
            },
            {"match": {"path_prefix": "/test.Dead/"}, "upstream": "dead"},
        ],
    )


@pytest.fixture(scope="module")
def upstream(module_processes: Processes) -> GrpcUpstream:
    return GrpcUpstream(module_processes, "a")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, upstream: GrpcUpstream
) -> Gateway:
    plain = H2Upstream(module_processes, "plain")
    config = grpc_config(upstream, plain)
    return module_processes.gateway(config, tmp_path_factory.mktemp("grpc"))


@pytest.fixture
def channel(gateway: Gateway):
    with grpc.insecure_channel(f"{HOST}:{gateway.port}", options=CHANNEL_OPTIONS) as channel:
        yield channel


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def raw_grpc_call(port: int, path: str, message: bytes, timeout: bytes) -> tuple:
    """A gRPC call with a grpc-timeout but no deadline of the client's own: what comes
    back is Dispa's doing. Returns (socket, stream id)."""
    client = TrailerSocket(port)
    stream_id = client.h2.get_next_available_stream_id()
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path.encode()),
        (b":authority", b"grpc.test"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-timeout", timeout),
    ]
    client.h2.send_headers(stream_id, headers)
    client.h2.send_data(stream_id, grpc_frame(message), end_stream=True)
    client.flush()
    return client, stream_id


# ---------------------------------------------------------------- the four kinds of call


def test_unary(channel) -> None:
    assert unary(channel, "/test.Echo/Unary")(b"hello", timeout=5) == b"hello"


def test_server_streaming(channel) -> None:
    call = channel.unary_stream(
        "/test.Echo/ServerStream", request_serializer=_identity, response_deserializer=_identity
    )
    assert list(call(b"5", timeout=5)) == [b"item-%d" % i for i in range(5)]


def test_client_streaming(channel) -> None:
    call = channel.stream_unary(
        "/test.Echo/ClientStream", request_serializer=_identity, response_deserializer=_identity
    )
    assert call(iter([b"a", b"bb", b"ccc"]), timeout=5) == b"3:6"


def test_bidirectional_streaming(channel) -> None:
    call = channel.stream_stream(
        "/test.Echo/Bidi", request_serializer=_identity, response_deserializer=_identity
    )
    assert list(call(iter([b"one", b"two", b"three"]), timeout=5)) == [b"ONE", b"TWO", b"THREE"]


def test_error_status_and_message_reach_the_client(channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/test.Echo/Fail")(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "no such thing: 100% ünïcode"


def test_large_messages_both_ways(channel) -> None:
    message = bytes(range(256)) * (4 * 1024 * 1024 // 256 + 7)  # a little over 4 MiB
    assert unary(channel, "/test.Echo/Unary")(message, timeout=20) == message
    call = channel.stream_stream(
        "/test.Echo/Bidi", request_serializer=_identity, response_deserializer=_identity
    )
    chunk = b"x" * (3 * 1024 * 1024)
    assert list(call(iter([chunk, chunk]), timeout=20)) == [chunk.upper(), chunk.upper()]


# ---------------------------------------------------------------- Dispa's own answers


def test_unknown_route_is_unimplemented(channel, gateway: Gateway) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/other.Service/Method")(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.details() == "no route"


def test_no_upstream_is_unavailable(channel, gateway: Gateway) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/test.Dead/Unary")(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "upstream connect failure"


def test_rate_limit_is_resource_exhausted(channel, gateway: Gateway) -> None:
    call = unary(channel, "/test.Limited/Unary")
    assert call(b"first", timeout=5) == b"first"
    with pytest.raises(grpc.RpcError) as caught:
        call(b"second", timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.details() == "rate limited"


def test_local_reply_is_trailers_only(gateway: Gateway) -> None:
    client, stream_id = raw_grpc_call(gateway.port, "/other.Service/Method", b"", b"5S")
    try:
        client.read_until(lambda: stream_id in client.ended)
        head = client.headers[stream_id]
        assert stream_id in client.head_ended  # one HEADERS frame, END_STREAM set
        assert head[b":status"] == b"200"
        assert head[b"content-type"] == b"application/grpc"
        assert head[b"grpc-status"] == b"12"
        assert head[b"grpc-message"] == b"no route"
        assert b"content-length" not in head
        assert not client.bodies.get(stream_id)
    finally:
        client.close()


def test_route_timeout_below_the_deadline_wins(channel, gateway: Gateway) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/test.Short/Slow")(b"2", timeout=10)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.details() == "upstream timeout"  # Dispa's, not the client's own


# ---------------------------------------------------------------- grpc-timeout


def test_grpc_timeout_is_a_deadline_answered_by_dispa(
    gateway: Gateway, upstream: GrpcUpstream
) -> None:
    before = upstream.stats()["slow_cancelled"]
    replies = gateway.local_replies("grpc_deadline_exceeded")
    started = time.monotonic()
    client, stream_id = raw_grpc_call(gateway.port, "/test.Blind/Slow", b"3", b"400m")
    try:
        client.read_until(lambda: stream_id in client.ended, timeout=5)
        head = client.headers[stream_id]
        assert stream_id in client.head_ended
        assert head[b":status"] == b"200"
        assert head[b"grpc-status"] == b"4"
        assert head[b"grpc-message"] == b"grpc deadline exceeded"
    finally:
        client.close()
    assert 0.35 < time.monotonic() - started < 1.5
    assert gateway.local_replies("grpc_deadline_exceeded") == replies + 1
    # Dispa reset the upstream's stream: the server saw its call cancelled.
    stats = wait_until(
        lambda: (s := upstream.stats())["slow_cancelled"] > before and s,
        timeout=5,
        what="the upstream's call to be cancelled",
    )
    assert stats["time_remaining"] > 3600  # it had no deadline of its own (grpcio: "infinite")


def test_grpc_timeout_mid_stream_ends_with_deadline_trailers(
    gateway: Gateway, upstream: GrpcUpstream
) -> None:
    before = upstream.stats()["slow_cancelled"]
    client, stream_id = raw_grpc_call(gateway.port, "/test.Blind/SlowStream", b"3", b"600m")
    try:
        client.read_until(lambda: stream_id in client.ended or stream_id in client.resets)
        assert client.headers[stream_id][b":status"] == b"200"
        assert bytes(client.bodies[stream_id]) == grpc_frame(b"first")
        assert client.trailers[stream_id] == {
            b"grpc-status": b"4",
            b"grpc-message": b"grpc deadline exceeded",
        }
    finally:
        client.close()
    wait_until(
        lambda: upstream.stats()["slow_cancelled"] > before,
        timeout=5,
        what="the upstream's call to be cancelled",
    )


def test_grpc_timeout_is_forwarded_decremented(gateway: Gateway) -> None:
    client, stream_id = raw_grpc_call(gateway.port, "/h2/", b"x", b"10S")
    try:
        client.read_until(lambda: stream_id in client.ended, timeout=5)
        seen = dict(json.loads(bytes(client.bodies[stream_id]))["headers"])
    finally:
        client.close()
    assert 9.0 < parse_grpc_timeout(seen["grpc-timeout"].encode()) <= 10.0


def test_grpc_timeout_reaches_a_grpc_upstream_which_cancels(
    gateway: Gateway, upstream: GrpcUpstream
) -> None:
    before = upstream.stats()
    client, stream_id = raw_grpc_call(gateway.port, "/test.Echo/Slow", b"3", b"400m")
    try:
        client.read_until(lambda: stream_id in client.ended, timeout=5)
        # The upstream's deadline (what was left of 400ms) and Dispa's race: both say 4.
        assert client.headers[stream_id][b"grpc-status"] == b"4"
    finally:
        client.close()
    after = wait_until(
        lambda: (s := upstream.stats())["slow_cancelled"] > before["slow_cancelled"] and s,
        timeout=5,
        what="the upstream's call to be cancelled",
    )
    assert 0 < after["time_remaining"] <= 0.4


def test_client_deadline_cancels_the_upstream_call(channel, upstream: GrpcUpstream) -> None:
    before = upstream.stats()["slow_cancelled"]
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/test.Echo/Slow")(b"3", timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(
        lambda: upstream.stats()["slow_cancelled"] > before,
        timeout=5,
        what="the upstream's call to be cancelled",
    )


def test_malformed_grpc_timeout_is_internal(gateway: Gateway) -> None:
    client, stream_id = raw_grpc_call(gateway.port, "/test.Echo/Unary", b"x", b"123456789S")
    try:
        client.read_until(lambda: stream_id in client.ended)
        head = client.headers[stream_id]
        assert head[b"grpc-status"] == b"13"
        assert head[b"grpc-message"] == b"malformed grpc timeout"
    finally:
        client.close()


# ---------------------------------------------------------------- grpc.health.v1


def test_grpc_health_check_follows_the_health_servicer(
    processes: Processes, tmp_path: Path
) -> None:
    upstream = GrpcUpstream(processes, "health")
    health = {
        "kind": "grpc",
        "service": "test.Echo",
        "interval": "200ms",
        "healthy_threshold": 1,
        "unhealthy_threshold": 1,
    }
    gateway = processes.gateway(grpc_config(upstream, health=health), tmp_path / "gw")

    def healthy() -> bool:
        return gateway.endpoints("app")[upstream.address]["active_health"] == "healthy"

    wait_until(healthy, what="the endpoint to be checked healthy")
    upstream.set_health("test.Echo", "NOT_SERVING")
    wait_until(lambda: not healthy(), what="the endpoint to be found unhealthy")
    with grpc.insecure_channel(f"{HOST}:{gateway.port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            unary(channel, "/test.Echo/Unary")(b"", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        upstream.set_health("test.Echo", "SERVING")
        wait_until(healthy, what="the endpoint to be healthy again")
        assert unary(channel, "/test.Echo/Unary")(b"back", timeout=5) == b"back"
