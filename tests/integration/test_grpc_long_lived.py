"""Long-lived gRPC streams through Dispa: a watch whose first message comes late, a
bidirectional stream whose client falls quiet while the server streams. A real grpcio
server (upstreams/grpc_upstream.py) behind an h2 upstream, real grpcio clients over h2c;
timeouts of a second or so, so that nothing here waits long."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from conftest import HOST, Gateway, Processes, make_config
from test_grpc import CHANNEL_OPTIONS, GrpcUpstream, _identity


def long_lived_config(upstream: GrpcUpstream) -> dict:
    endpoints = [{"address": upstream.address}]
    return make_config(
        upstreams=[
            # The response timeout a plain HTTP route would have, far below a watch's wait.
            {
                "name": "app",
                "protocol": "h2",
                "endpoints": endpoints,
                "timeouts": {"response": "1s"},
            },
            # An operator's bound on the wait for a gRPC response head.
            {
                "name": "bounded",
                "protocol": "h2",
                "endpoints": endpoints,
                "timeouts": {"response": "30s", "grpc_response": "1s"},
            },
            # An upstream allowed one second of silence.
            {
                "name": "quiet",
                "protocol": "h2",
                "endpoints": endpoints,
                "timeouts": {"response": "30s", "idle": "1s"},
            },
        ],
        routes=[
            {"match": {"path_prefix": "/test.Echo/"}, "upstream": "app"},
            {"match": {"path_prefix": "/test.Limited/"}, "upstream": "bounded"},
            {"match": {"path_prefix": "/test.Blind/"}, "upstream": "quiet"},
            # A route's own timeout is chosen for that route: it applies to gRPC too.
            {"match": {"path_prefix": "/test.Short/"}, "upstream": "app", "timeout": "500ms"},
        ],
        # A client may pause its body one second, and must average 500 B/s after one.
        listeners=[
            {
                "name": "public",
                "limits": {"body_timeout": "1s", "body_rate_grace": "1s", "min_body_rate": 500},
            }
        ],
    )


@pytest.fixture(scope="module")
def upstream(module_processes: Processes) -> GrpcUpstream:
    return GrpcUpstream(module_processes, "long-lived")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, upstream: GrpcUpstream
) -> Gateway:
    config = long_lived_config(upstream)
    return module_processes.gateway(config, tmp_path_factory.mktemp("grpc-long-lived"))


@pytest.fixture
def channel(gateway: Gateway):
    with grpc.insecure_channel(f"{HOST}:{gateway.port}", options=CHANNEL_OPTIONS) as channel:
        yield channel


def server_stream(channel, method: str):
    return channel.unary_stream(
        method, request_serializer=_identity, response_deserializer=_identity
    )


def timed_stream(channel, method: str, request: bytes, timeout: float | None = None):
    """(messages received, status code, details, seconds taken) of a server-streaming call."""
    started = time.monotonic()
    call = server_stream(channel, method)(request, timeout=timeout)
    messages = []
    try:
        for message in call:
            messages.append(message)
    except grpc.RpcError:
        pass
    return messages, call.code(), call.details(), time.monotonic() - started


# ---------------------------------------------------------------- the wait for the first message


@pytest.mark.parametrize("deadline", [None, 10.0], ids=["no-deadline", "client-deadline"])
def test_first_message_after_the_response_timeout_arrives(channel, deadline) -> None:
    """grpcio (as grpc-go and grpc-js) sends the response head with the first message: a
    watch whose first event comes after `timeouts.response` must not be cut by it."""
    messages, code, details, _ = timed_stream(
        channel, "/test.Echo/LateStream", b"2.5:3", timeout=deadline
    )
    assert (code, details) == (grpc.StatusCode.OK, "")
    assert messages == [b"event-0", b"event-1", b"event-2"]


def test_a_slow_unary_answer_is_not_cut_by_the_response_timeout(channel) -> None:
    call = channel.unary_unary(
        "/test.Echo/Slow", request_serializer=_identity, response_deserializer=_identity
    )
    assert call(b"2", timeout=None) == b"slept"


def test_grpc_response_bounds_the_wait_when_set(channel, gateway: Gateway) -> None:
    replies = gateway.local_replies("upstream_timeout")
    messages, code, details, took = timed_stream(channel, "/test.Limited/LateStream", b"4:1")
    assert (code, details) == (grpc.StatusCode.DEADLINE_EXCEEDED, "upstream timeout")
    assert messages == []
    assert 0.9 < took < 3.0
    assert gateway.local_replies("upstream_timeout") == replies + 1


def test_a_route_timeout_still_applies_to_grpc(channel) -> None:
    messages, code, details, took = timed_stream(channel, "/test.Short/LateStream", b"3:1")
    assert (code, details) == (grpc.StatusCode.DEADLINE_EXCEEDED, "upstream timeout")
    assert messages == []
    assert 0.4 < took < 2.5


def test_an_upstream_silent_past_idle_before_its_head_is_deadline_exceeded(channel) -> None:
    """With no response timeout, the upstream's silence is still bounded: by its idle
    timeout, before its response head as after it."""
    messages, code, details, took = timed_stream(channel, "/test.Blind/LateStream", b"4:1")
    assert (code, details) == (grpc.StatusCode.DEADLINE_EXCEEDED, "upstream timeout")
    assert messages == []
    assert 0.9 < took < 3.0


def test_an_upstream_silent_past_idle_mid_stream_ends_with_a_status(channel) -> None:
    """Cut mid-stream, a gRPC client hears why (trailers), not a reset it reads as INTERNAL."""
    messages, code, details, took = timed_stream(channel, "/test.Blind/SlowStream", b"4")
    assert messages == [b"first"]
    assert (code, details) == (grpc.StatusCode.DEADLINE_EXCEEDED, "upstream timeout")
    assert 0.9 < took < 3.0


def test_the_client_deadline_still_ends_a_late_watch(channel) -> None:
    messages, code, _, took = timed_stream(channel, "/test.Echo/LateStream", b"4:1", timeout=1.5)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert messages == []
    assert took < 3.0


# ---------------------------------------------------------------- a quiet client


def test_a_bidirectional_stream_whose_client_falls_quiet_completes(
    channel, gateway: Gateway
) -> None:
    """The client sends one message and keeps its side open, quiet, for three seconds while
    the server streams: past the listener's body_timeout (1 s) and its pace rule (500 B/s
    after 1 s). Neither is for a gRPC stream: its deadline and the upstream's idle are."""
    done = threading.Event()

    def requests():
        yield b"10:0.3"
        done.wait(10)  # the client's side stays open until every answer has come

    call = channel.stream_stream(
        "/test.Echo/QuietBidi", request_serializer=_identity, response_deserializer=_identity
    )
    timeouts = gateway.local_replies("client_timeout")
    too_slow = gateway.local_replies("request_body_too_slow")
    started = time.monotonic()
    responses = call(requests())
    received = []
    try:
        for message in responses:
            received.append(message)
    finally:
        done.set()
    assert responses.code() == grpc.StatusCode.OK, responses.details()
    assert received == [b"tick-%d" % index for index in range(10)]
    assert time.monotonic() - started > 2.5  # the quiet part lasted past both limits
    assert gateway.local_replies("client_timeout") == timeouts
    assert gateway.local_replies("request_body_too_slow") == too_slow
