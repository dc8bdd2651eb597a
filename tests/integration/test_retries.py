"""Retries: idempotent requests go to another endpoint when a try fails; others do not."""

from __future__ import annotations

import hashlib
import time

import aiohttp
import pytest
from conftest import Gateway, Processes, Upstream, free_port, make_config

NO_OUTLIER = {"consecutive_5xx": 0, "consecutive_failures": 0}


@pytest.fixture(scope="module")
def unavailable(module_processes: Processes) -> Upstream:
    """An endpoint that answers 503 to everything."""
    return module_processes.faulty_upstream("unavailable", always_status=503)


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes,
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: Upstream,
    unavailable: Upstream,
    faulty: Upstream,
) -> Gateway:
    refused = f"127.0.0.1:{free_port()}"  # nothing listens: connections are refused
    config = make_config(
        upstreams=[
            {
                "name": "half-dead",
                "endpoints": [{"address": refused}, {"address": upstream_a.address}],
                "outlier": NO_OUTLIER,  # keep the dead endpoint in rotation
            },
            {
                "name": "half-503",
                "endpoints": [{"address": unavailable.address}, {"address": upstream_a.address}],
                "outlier": NO_OUTLIER,
                # A 503 is the upstream's own answer: retried only when listed here.
                "retry": {"retry_on": ["connect_failure", "reset", 503]},
            },
            {
                "name": "half-silent",
                "endpoints": [{"address": faulty.address}, {"address": upstream_a.address}],
                "outlier": NO_OUTLIER,
                "retry": {"per_try_timeout": "300ms"},
            },
            {
                "name": "all-dead",
                "endpoints": [{"address": refused}],
                "retry": {"attempts": 3},
            },
        ],
        routes=[
            {"match": {"host": "dead.test"}, "upstream": "half-dead"},
            {"match": {"host": "unavailable.test"}, "upstream": "half-503"},
            {"match": {"host": "lost.test"}, "upstream": "all-dead"},
            {"match": {"host": "silent.test"}, "upstream": "half-silent"},
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("retries"))


def retries(gateway: Gateway, upstream: str) -> float:
    return gateway.metric("dispa_retries_total", upstream=upstream)


async def test_gets_are_retried_after_a_connect_failure(gateway: Gateway) -> None:
    before = retries(gateway, "half-dead")
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.get(gateway.url("/"), headers={"Host": "dead.test"}) as response:
                assert response.status == 200
                assert await response.text() == "hello from alpha\n"
    # Round robin sends about every other first try to the refusing endpoint.
    assert retries(gateway, "half-dead") - before >= 8


async def test_posts_are_not_retried(gateway: Gateway) -> None:
    before = retries(gateway, "half-dead")
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.post(
                gateway.url("/count"), data=b"payload", headers={"Host": "dead.test"}
            ) as response:
                statuses.append(response.status)
    assert set(statuses) == {200, 502}
    assert statuses.count(502) >= 3
    assert retries(gateway, "half-dead") == before


async def test_gets_are_retried_after_a_503_when_retry_on_lists_it(gateway: Gateway) -> None:
    before = retries(gateway, "half-503")
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.get(gateway.url("/"), headers={"Host": "unavailable.test"}) as r:
                assert r.status == 200
                assert r.headers["x-upstream"] == "alpha"
    assert retries(gateway, "half-503") - before >= 4


async def test_a_request_is_tried_at_most_attempts_times(gateway: Gateway) -> None:
    before = retries(gateway, "all-dead")
    async with (
        aiohttp.ClientSession() as session,
        session.get(gateway.url("/"), headers={"Host": "lost.test"}) as response,
    ):
        assert response.status == 502
    assert retries(gateway, "all-dead") - before == 2  # attempts: 3 = first try + 2 retries


async def test_small_bodies_are_replayed_on_retry(gateway: Gateway) -> None:
    before = retries(gateway, "half-dead")
    body = bytes(range(256)) * 40  # 10 KiB: small enough to be kept for a replay
    digest = hashlib.sha256(body).hexdigest()
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.put(
                gateway.url("/count"), data=body, headers={"Host": "dead.test"}
            ) as response:
                assert response.status == 200  # PUT is idempotent: retried
                assert await response.json() == {
                    "size": len(body),
                    "sha256": digest,
                    "upstream": "alpha",
                }
    assert retries(gateway, "half-dead") - before >= 4


async def test_per_try_timeout_moves_on_to_another_endpoint(gateway: Gateway) -> None:
    before = retries(gateway, "half-silent")
    async with aiohttp.ClientSession() as session:
        for _ in range(4):
            started = time.monotonic()
            async with session.get(
                gateway.url("/silent"), headers={"Host": "silent.test"}
            ) as response:
                # The silent endpoint never answers; after 300 ms the try goes elsewhere.
                assert response.status == 200
                assert response.headers["x-upstream"] == "alpha"
            assert time.monotonic() - started < 2.0
    assert retries(gateway, "half-silent") - before >= 1
