"""HTTP/2 with prior knowledge (h2c) on a plain listener, next to HTTP/1.1, with real clients:
curl, h2load, and the h2 library over a raw socket where a test needs frame-level control."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    HOST,
    Gateway,
    Processes,
    Upstream,
    curl,
    free_port,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)
from h2.errors import ErrorCodes
from h2_socket import H2Socket

MIB = 1024 * 1024


def h2_config(upstream: Upstream, **top) -> dict:
    return make_config(
        upstreams=[{"name": "app", "endpoints": [{"address": upstream.address}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
        **top,
    )


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, upstream_a: Upstream
) -> Gateway:
    return module_processes.gateway(h2_config(upstream_a), tmp_path_factory.mktemp("http2"))


# ---------------------------------------------------------------- curl and h2load


def test_curl_get_with_prior_knowledge(gateway: Gateway) -> None:
    result = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", gateway.url("/"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello from alpha\n\n2"


def test_curl_upload_5_mb(gateway: Gateway, tmp_path: Path) -> None:
    data = os.urandom(5 * MIB)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    result = curl(
        "--http2-prior-knowledge", "--data-binary", f"@{path}", gateway.url("/count"), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "upstream": "alpha",
    }


def test_curl_streaming_download(gateway: Gateway, tmp_path: Path) -> None:
    target = tmp_path / "download.bin"
    size = 30_000_000
    result = curl(
        "--http2-prior-knowledge",
        "-o",
        str(target),
        "-w",
        "%{http_code} %{http_version}",
        gateway.url(f"/bytes/{size}"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"200 2"
    data = target.read_bytes()
    assert len(data) == size and data.count(b"x") == size


def test_h2load_2000_requests_none_failed(gateway: Gateway) -> None:
    result = subprocess.run(
        ["h2load", "-n", "2000", "-c", "10", "-m", "10", gateway.url("/")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert "Application protocol: h2c" in output
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
    )
    assert counts is not None, output
    assert counts.groups() == ("2000", "2000", "2000", "2000", "0", "0", "0"), output
    assert "status codes: 2000 2xx" in output


def test_http1_clients_share_the_listener(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        for _ in range(2):  # keep-alive still works after the sniffing
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h1.test\r\n\r\n")
            response = read_response(stream)
            assert (response.status, response.body) == (200, b"hello from alpha\n")
    result = curl("--http1.1", "-w", "\n%{http_version}", gateway.url("/"))
    assert result.stdout == b"hello from alpha\n\n1.1"


# ---------------------------------------------------------------- many streams, one connection


def test_a_slow_stream_does_not_hold_up_the_others(gateway: Gateway) -> None:
    client = H2Socket(gateway.port)
    try:
        started = time.monotonic()
        slow = client.request("/slow?ms=2000")
        quick = [client.request(f"/?n={n}") for n in range(30)]
        client.read_until(lambda: all(s in client.ended for s in quick), timeout=5.0)
        quick_done = max(client.ended[s] for s in quick) - started
        assert slow not in client.ended
        assert quick_done < 1.5, f"the quick streams took {quick_done:.2f}s"
        assert all(client.status[s] == 200 for s in quick)
        assert all(client.bodies[s] == b"hello from alpha\n" for s in quick)
        client.read_until(lambda: slow in client.ended, timeout=5.0)
        assert client.ended[slow] - started >= 2.0
        assert client.bodies[slow] == b"slow hello from alpha\n"
    finally:
        client.close()


def test_a_client_reset_mid_response_leaves_the_gateway_serving(
    gateway: Gateway, upstream_a: Upstream
) -> None:
    client = H2Socket(gateway.port, window=65535)
    try:
        client.auto_acknowledge = False  # a reader that stalls: the response cannot finish
        big = client.request("/bytes/200000000")
        client.read_until(lambda: len(client.bodies.get(big, b"")) >= 65535)
        assert gateway.endpoints("app")[upstream_a.address]["active_requests"] == 1
        client.h2.reset_stream(big, ErrorCodes.CANCEL)
        client.flush()
        wait_until(
            lambda: gateway.endpoints("app")[upstream_a.address]["active_requests"] == 0,
            timeout=5.0,
            what="the reset stream's exchange to end",
        )
        # The same connection goes on serving, and so does the gateway.
        client.auto_acknowledge = True
        again = client.request("/")
        client.read_until(lambda: again in client.ended)
        assert client.bodies[again] == b"hello from alpha\n"
        assert big not in client.ended
    finally:
        client.close()
    result = curl("--http2-prior-knowledge", gateway.url("/"))
    assert result.stdout == b"hello from alpha\n"


# ---------------------------------------------------------------- drain


def test_a_listener_moved_by_reload_sends_goaway_and_finishes_the_stream_in_flight(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    config = h2_config(upstream_a)
    gateway = processes.gateway(config, tmp_path)
    old_port = gateway.port
    client = H2Socket(old_port)
    try:
        slow = client.request("/slow?ms=1500")
        wait_until(
            lambda: gateway.endpoints("app")[upstream_a.address]["active_requests"] == 1,
            what="the slow stream to be in flight",
        )
        revision = gateway.revision()
        moved = json.loads(json.dumps(config))
        moved["listeners"][0]["address"] = f"{HOST}:{free_port()}"
        gateway.reload(moved)
        wait_until(lambda: gateway.revision() == revision + 1, what="the reload")
        # The connection was accepted under settings no longer in force: no new streams.
        client.read_until(lambda: client.goaway is not None, timeout=3.0)
        assert client.goaway.error_code == ErrorCodes.NO_ERROR
        assert client.goaway.last_stream_id == slow
        client.read_until(lambda: slow in client.ended, timeout=5.0)
        assert client.status[slow] == 200
        assert client.bodies[slow] == b"slow hello from alpha\n"
        client.read_until(lambda: client.closed, timeout=3.0)
    finally:
        client.close()
    assert curl("--http2-prior-knowledge", gateway.url("/")).stdout == b"hello from alpha\n"
    assert gateway.port != old_port


def test_sigterm_sends_goaway_and_finishes_the_stream_in_flight(
    processes: Processes, tmp_path: Path, upstream_a: Upstream
) -> None:
    gateway = processes.gateway(h2_config(upstream_a, drain_timeout="5s"), tmp_path)
    client = H2Socket(gateway.port)
    try:
        slow = client.request("/slow?ms=1500")
        wait_until(
            lambda: gateway.endpoints("app")[upstream_a.address]["active_requests"] == 1,
            what="the slow stream to be in flight",
        )
        gateway.process.signal(signal.SIGTERM)
        client.read_until(lambda: client.goaway is not None, timeout=3.0)
        assert client.goaway.error_code == ErrorCodes.NO_ERROR
        assert client.goaway.last_stream_id == slow
        assert slow not in client.ended  # told before its answer, not after
        client.read_until(lambda: slow in client.ended, timeout=5.0)
        assert client.status[slow] == 200
        assert client.bodies[slow] == b"slow hello from alpha\n"
        # Its last stream done, the gateway closes the connection and exits.
        client.read_until(lambda: client.closed, timeout=3.0)
    finally:
        client.close()
    assert gateway.process.wait(10.0) == 0
    assert "dispa stopped" in gateway.stderr()
