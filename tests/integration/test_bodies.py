"""Request and response bodies stream through intact: content-length and chunked, both ways."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import (
    Gateway,
    Processes,
    Upstream,
    curl,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)

MIB = 1024 * 1024
SIZE = 20 * MIB
BLOCK = 256 * 1024


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, str]:
    data = os.urandom(SIZE)
    path = tmp_path_factory.mktemp("payload") / "payload.bin"
    path.write_bytes(data)
    return path, data, hashlib.sha256(data).hexdigest()


def body_gateway_config(upstream: Upstream) -> dict:
    return make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream.address}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, upstream_a: Upstream
) -> Gateway:
    return module_processes.gateway(
        body_gateway_config(upstream_a), tmp_path_factory.mktemp("bodies")
    )


async def in_pieces(data: bytes, size: int = BLOCK) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_upload_with_content_length(gateway: Gateway, payload) -> None:
    _, data, digest = payload
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url("/count"), data=data) as response,
    ):
        assert response.status == 200
        assert response.request_info.headers["Content-Length"] == str(SIZE)
        assert await response.json() == {"size": SIZE, "sha256": digest, "upstream": "alpha"}


async def test_upload_chunked(gateway: Gateway, payload) -> None:
    _, data, digest = payload
    async with (
        aiohttp.ClientSession() as session,
        session.put(gateway.url("/count"), data=in_pieces(data)) as response,
    ):
        assert response.status == 200
        assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert await response.json() == {"size": SIZE, "sha256": digest, "upstream": "alpha"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_curl_upload(gateway: Gateway, payload, chunked: bool) -> None:
    path, _, digest = payload
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    result = curl("-X", "POST", "--data-binary", f"@{path}", *extra, gateway.url("/count"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"size": SIZE, "sha256": digest, "upstream": "alpha"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_echo_streams_the_body_back(gateway: Gateway, payload, chunked: bool) -> None:
    _, data, digest = payload
    body = in_pieces(data) if chunked else data
    received = hashlib.sha256()
    size = 0
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url("/echo"), data=body) as response,
    ):
        assert response.status == 200
        async for piece in response.content.iter_chunked(BLOCK):
            received.update(piece)
            size += len(piece)
    assert size == SIZE
    assert received.hexdigest() == digest


async def test_download_50_mb(gateway: Gateway) -> None:
    size = 0
    wrong = 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(gateway.url("/bytes/50000000")) as response,
    ):
        assert response.status == 200
        async for piece in response.content.iter_chunked(BLOCK):
            size += len(piece)
            wrong += len(piece) - piece.count(b"x")
    assert size == 50_000_000
    assert wrong == 0


def test_curl_download_50_mb(gateway: Gateway, tmp_path: Path) -> None:
    target = tmp_path / "download.bin"
    result = curl("-o", str(target), "-w", "%{http_code}", gateway.url("/bytes/50000000"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"200"
    assert target.stat().st_size == 50_000_000


GIB = 1024 * MIB


@pytest.mark.slow
async def test_one_gib_each_way_keeps_gateway_memory_bounded(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    gateway = processes.gateway(body_gateway_config(upstream_a), tmp_path)
    block = os.urandom(MIB)
    expected = hashlib.sha256()
    for _ in range(GIB // MIB):
        expected.update(block)

    async def one_gib() -> AsyncIterator[bytes]:
        for _ in range(GIB // MIB):
            yield block

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(gateway.url("/count"), data=one_gib()) as response:
            assert response.status == 200
            assert await response.json() == {
                "size": GIB,
                "sha256": expected.hexdigest(),
                "upstream": "alpha",
            }
        size = 0
        async with session.get(gateway.url(f"/bytes/{GIB}")) as response:
            assert response.status == 200
            async for piece in response.content.iter_chunked(MIB):
                size += len(piece)
        assert size == GIB
    peak_mib = gateway.vm_hwm_kib() / 1024
    assert peak_mib < 200, f"gateway peak RSS {peak_mib:.0f} MiB after moving 2 GiB"


def test_expect_100_continue_gets_an_interim_answer(gateway: Gateway) -> None:
    # curl sends "Expect: 100-continue" for bodies over 1 MiB and waits (1 s) for the
    # interim answer before sending the body: the gateway must not swallow it.
    with raw_connection(gateway.port, timeout=0.8) as (sock, stream):
        sock.sendall(
            b"POST /count HTTP/1.1\r\nHost: e.test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = read_response(stream)
        assert interim.status == 100
        sock.sendall(b"hello")
        final = read_response(stream)
        assert final.status == 200
        assert json.loads(final.body)["size"] == 5


def test_client_leaving_mid_download_releases_the_upstream(
    gateway: Gateway, upstream_a: Upstream
) -> None:
    connections = gateway.metric("dispa_connections_active")
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /bytes/500000000 HTTP/1.1\r\nHost: b.test\r\n\r\n")
        assert stream.read(MIB)  # part of the body, then the client is gone
        assert gateway.endpoints("app")[upstream_a.address]["active_requests"] == 1
    wait_until(
        lambda: gateway.endpoints("app")[upstream_a.address]["active_requests"] == 0,
        timeout=5.0,
        what="the exchange to end",
    )
    wait_until(
        lambda: gateway.metric("dispa_connections_active") == connections,
        timeout=5.0,
        what="the client connection to be counted closed",
    )
    # The half-read upstream connection was dropped, not pooled for the next request.
    assert gateway.endpoints("app")[upstream_a.address]["idle_connections"] <= 1
    result = curl(gateway.url("/bytes/1000"))
    assert result.stdout == b"x" * 1000


def test_stalled_reader_does_not_grow_gateway_memory(gateway: Gateway) -> None:
    # Backpressure: a client that stops reading pauses the upstream instead of the
    # gateway buffering the body.
    rss_before = gateway.vm_rss_kib()
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /bytes/400000000 HTTP/1.1\r\nHost: b.test\r\n\r\n")
        assert stream.read(1000)
        time.sleep(1.5)  # the upstream could send hundreds of MB meanwhile
        grown_mib = (gateway.vm_rss_kib() - rss_before) / 1024
    assert grown_mib < 50, f"gateway RSS grew {grown_mib:.0f} MiB behind a stalled reader"


def test_answer_before_the_body_is_read_reaches_the_client_cleanly(
    gateway: Gateway, payload
) -> None:
    # The demo upstream's "/" answers without reading the request body. The client must
    # get that answer and finish sending without a reset (curl exit 55: failed sending).
    path, _, _ = payload
    for _ in range(3):
        result = curl("-w", " %{http_code}", "--data-binary", f"@{path}", gateway.url("/"))
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"hello from alpha\n 200"
