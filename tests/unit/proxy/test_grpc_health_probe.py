"""The grpc.health.v1 probe against a real grpcio server on 127.0.0.1 (in this process)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from concurrent import futures

import pytest

from dispa.config.schema import HealthCheck
from dispa.proxy.grpc.health import GrpcHealthError
from dispa.proxy.upstream.endpoint import Endpoint
from dispa.proxy.upstream.health_checker import ActiveHealthChecker, describe_error, probe_grpc

grpc = pytest.importorskip("grpc")
health = pytest.importorskip("grpc_health.v1.health")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def servicer() -> Iterator[tuple[object, Endpoint]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, Endpoint("api", "127.0.0.1", port)
    finally:
        server.stop(None)


def check(service: str = "my.Service", **options) -> HealthCheck:
    return HealthCheck(kind="grpc", service=service, timeout=2.0, **options)


async def test_serving_passes(servicer) -> None:
    health_servicer, endpoint = servicer
    health_servicer.set("my.Service", SERVING)
    assert await probe_grpc(endpoint, check()) == 200


async def test_the_whole_server_is_the_empty_service(servicer) -> None:
    health_servicer, endpoint = servicer
    health_servicer.set("", SERVING)
    assert await probe_grpc(endpoint, check(service="")) == 200


async def test_not_serving_fails(servicer) -> None:
    health_servicer, endpoint = servicer
    health_servicer.set("my.Service", NOT_SERVING)
    with pytest.raises(GrpcHealthError, match=r"^NOT_SERVING$"):
        await probe_grpc(endpoint, check())


async def test_unknown_service_fails_with_its_grpc_status(servicer) -> None:
    _, endpoint = servicer
    with pytest.raises(GrpcHealthError) as caught:
        await probe_grpc(endpoint, check(service="nobody.Here"))
    assert describe_error(caught.value, check()).startswith("grpc-status 5")  # NOT_FOUND


async def test_a_silent_endpoint_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        endpoint = Endpoint("api", "127.0.0.1", listener.getsockname()[1])
        with pytest.raises(TimeoutError):
            await probe_grpc(endpoint, check().model_copy(update={"timeout": 0.2}))
    finally:
        listener.close()


async def test_checker_flips_with_the_servicer(servicer) -> None:
    health_servicer, endpoint = servicer
    health_servicer.set("my.Service", SERVING)
    changes: list[bool] = []
    config = check(interval=0.05, healthy_threshold=1, unhealthy_threshold=1)
    checker = ActiveHealthChecker([endpoint], config, lambda _, up: changes.append(up), "h2")
    checker.start()
    try:
        health_servicer.set("my.Service", NOT_SERVING)
        for _ in range(100):
            if changes == [False]:
                break
            await asyncio.sleep(0.05)
        assert changes == [False]
        assert checker.statistics()[endpoint.address]["last_error"] == "NOT_SERVING"
        health_servicer.set("my.Service", SERVING)
        for _ in range(100):
            if changes == [False, True]:
                break
            await asyncio.sleep(0.05)
        assert changes == [False, True]
    finally:
        await checker.stop()
