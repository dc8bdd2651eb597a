"""HTTP/2 to upstreams (``protocol: h2``): a real h2c upstream process (upstreams/h2_upstream.py)
behind the gateway, with real clients: curl (HTTP/1.1 and prior-knowledge HTTP/2), h2load,
and the h2 library over a raw socket where a test needs frame-level control."""

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
    PYTHON,
    Gateway,
    Processes,
    can_connect,
    curl,
    free_port,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)
from h2.events import ResponseReceived, TrailersReceived
from test_http2 import H2Socket

from tests.tls_certs import TestCA

H2_UPSTREAM = Path(__file__).resolve().parent / "upstreams" / "h2_upstream.py"
MIB = 1024 * 1024


class H2Upstream:
    def __init__(
        self, processes: Processes, name: str, max_streams: int = 100, tls_args=()
    ) -> None:
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.tls = bool(tls_args)
        argv = [PYTHON, str(H2_UPSTREAM), "--port", str(self.port), "--name", name]
        argv += ["--max-streams", str(max_streams), *tls_args]
        self.process = processes.start(argv, f"h2-upstream-{name}")
        wait_until(lambda: can_connect(self.port), what=f"h2 upstream {name} to listen")

    def get(self, path: str) -> bytes:
        """Straight to the upstream, not through the gateway."""
        if self.tls:
            result = curl("--http2", "-k", f"https://{self.address}{path}")
        else:
            result = curl("--http2-prior-knowledge", f"http://{self.address}{path}")
        assert result.returncode == 0, result.stderr
        return result.stdout

    def stats(self) -> dict:
        return json.loads(self.get("/stats"))


class TrailerSocket(H2Socket):
    """``H2Socket`` that also keeps trailers, and whether a head ended its stream."""

    def __init__(self, port: int, **kwargs) -> None:
        self.trailers: dict[int, dict[bytes, bytes]] = {}
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.head_ended: set[int] = set()
        super().__init__(port, **kwargs)

    def _handle(self, events) -> None:
        for event in events:
            if type(event) is TrailersReceived:
                self.trailers[event.stream_id] = dict(event.headers)
            elif type(event) is ResponseReceived:
                self.headers[event.stream_id] = dict(event.headers)
                if event.stream_ended is not None:
                    self.head_ended.add(event.stream_id)
        super()._handle(events)

    def post_with_trailers(self, path: str, body: bytes, trailers) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"h2.test"),
            (b"te", b"trailers"),
        ]
        self.h2.send_headers(stream_id, headers)
        self.h2.send_data(stream_id, body)
        self.h2.send_headers(stream_id, trailers, end_stream=True)
        self.flush()
        return stream_id


def h2_upstream_config(*upstreams: H2Upstream, **options) -> dict:
    upstream = {
        "name": "app",
        "protocol": "h2",
        "endpoints": [{"address": u.address} for u in upstreams],
        **options,
    }
    return make_config(
        upstreams=[upstream], routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}]
    )


@pytest.fixture(scope="module")
def upstream(module_processes: Processes) -> H2Upstream:
    return H2Upstream(module_processes, "h2a")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, upstream: H2Upstream
) -> Gateway:
    config = h2_upstream_config(upstream, retry={"attempts": 2})
    return module_processes.gateway(config, tmp_path_factory.mktemp("h2-upstream"))


# ---------------------------------------------------------------- translation


def test_http1_client_to_h2_upstream_is_translated(gateway: Gateway) -> None:
    result = curl(
        "--http1.1",
        "-H",
        "Connection: keep-alive, x-private",
        "-H",
        "X-Private: hop",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "TE: trailers",
        "-H",
        "Cookie: a=1; b=2",
        gateway.url("/path?q=1"),
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["pseudo"] == {
        ":method": "GET",
        ":scheme": "http",
        ":authority": f"127.0.0.1:{gateway.port}",
        ":path": "/path?q=1",
    }
    headers = dict(document["headers"])
    assert "x-private" not in headers and "keep-alive" not in headers
    assert "connection" not in headers and "host" not in headers
    assert headers["te"] == "trailers"
    assert headers["cookie"] == "a=1; b=2"
    assert headers["via"] == "1.1 dispa"
    assert headers["x-forwarded-for"] == "127.0.0.1"


def test_h2_client_to_h2_upstream(gateway: Gateway) -> None:
    result = curl(
        "--http2-prior-knowledge",
        "-H",
        "Cookie: a=1",
        "-w",
        "\n%{http_version}",
        gateway.url("/x"),
    )
    assert result.returncode == 0, result.stderr
    body, _, version = result.stdout.rpartition(b"\n")
    assert version == b"2"
    document = json.loads(body)
    assert document["pseudo"][":authority"] == f"127.0.0.1:{gateway.port}"
    assert dict(document["headers"])["cookie"] == "a=1"


# ---------------------------------------------------------------- multiplexing


def test_many_concurrent_streams_share_one_upstream_connection(
    processes: Processes, tmp_path: Path
) -> None:
    upstream = H2Upstream(processes, "shared")
    gateway = processes.gateway(h2_upstream_config(upstream), tmp_path)
    result = subprocess.run(
        ["h2load", "-n", "1000", "-c", "4", "-m", "25", gateway.url("/")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert "status codes: 1000 2xx" in output, output
    stats = upstream.stats()
    assert stats["gateway_connections"] == 1, stats
    assert stats["max_concurrent"] > 1, stats


def test_max_concurrent_streams_opens_a_second_connection(
    processes: Processes, tmp_path: Path
) -> None:
    upstream = H2Upstream(processes, "narrow", max_streams=2)
    gateway = processes.gateway(h2_upstream_config(upstream), tmp_path)
    client = H2Socket(gateway.port)
    try:
        # Twelve at once: six connections' worth, opened one after another as they fill.
        streams = [client.request(f"/slow?ms=400&n={n}") for n in range(12)]
        client.read_until(lambda: all(s in client.ended for s in streams), timeout=10.0)
        assert [client.status[s] for s in streams] == [200] * 12, client.bodies
        connections = {json.loads(client.bodies[s])["connection"] for s in streams}
    finally:
        client.close()
    stats = upstream.stats()
    assert stats["max_concurrent"] <= 2, stats
    assert stats["gateway_connections"] >= 2 and len(connections) >= 2, stats


def test_idle_upstream_connections_close_after_the_pool_idle_timeout(
    processes: Processes, tmp_path: Path
) -> None:
    upstream = H2Upstream(processes, "idle")
    gateway = processes.gateway(h2_upstream_config(upstream, pool={"idle_timeout": "1s"}), tmp_path)
    assert curl(gateway.url("/")).returncode == 0
    assert curl(gateway.url("/")).returncode == 0
    assert upstream.stats()["gateway_open"] == 1
    wait_until(lambda: upstream.stats()["gateway_open"] == 0, timeout=5.0, what="idle close")
    assert upstream.stats()["gateway_connections"] == 1  # the two requests shared it


# ---------------------------------------------------------------- bodies and flow control


def test_large_bodies_both_ways(gateway: Gateway, tmp_path: Path) -> None:
    data = os.urandom(5 * MIB)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    for version in ("--http2-prior-knowledge", "--http1.1"):
        out = tmp_path / "echo.bin"
        result = curl(
            version, "--data-binary", f"@{path}", "-o", str(out), gateway.url("/echo"), timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    size = 30_000_000
    for version in ("--http2-prior-knowledge", "--http1.1"):
        out = tmp_path / "download.bin"
        result = curl(version, "-o", str(out), gateway.url(f"/bytes/{size}"), timeout=60)
        assert result.returncode == 0, result.stderr
        assert out.stat().st_size == size


def test_a_slow_client_does_not_stall_other_streams(processes: Processes, tmp_path: Path) -> None:
    upstream = H2Upstream(processes, "slowclient")
    gateway = processes.gateway(h2_upstream_config(upstream), tmp_path)
    stalled = H2Socket(gateway.port, window=65535)
    try:
        stalled.auto_acknowledge = False  # reads nothing more: its stream must stop
        big = stalled.request("/bytes/100000000")
        stalled.read_until(lambda: len(stalled.bodies.get(big, b"")) >= 65535)
        started = time.monotonic()
        for _ in range(5):
            result = curl("--http2-prior-knowledge", gateway.url("/bytes/2000000"), timeout=10)
            assert result.returncode == 0 and len(result.stdout) == 2_000_000
        assert time.monotonic() - started < 5.0
        assert upstream.stats()["gateway_connections"] == 1  # all on the shared connection
    finally:
        stalled.close()


# ---------------------------------------------------------------- trailers


def test_trailers_h2_to_h2(gateway: Gateway) -> None:
    client = TrailerSocket(gateway.port)
    try:
        stream = client.request("/trailers")
        client.read_until(lambda: stream in client.ended)
        assert client.status[stream] == 200
        assert bytes(client.bodies[stream]) == b"trailered body\n"
        assert client.trailers[stream] == {b"grpc-status": b"0", b"grpc-message": b"all good"}
    finally:
        client.close()


def test_trailers_h2_to_h1_only_with_te_trailers(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /trailers HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
        head = b""
        while not head.endswith(b"0\r\n"):
            head += stream.readline()
        rest = b""
        while not rest.endswith(b"\r\n\r\n"):
            rest += stream.readline()
    assert b"transfer-encoding: chunked" in head
    assert rest == b"grpc-status: 0\r\ngrpc-message: all good\r\n\r\n"
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /trailers HTTP/1.1\r\nHost: a\r\n\r\n")
        response = read_response(stream)
        assert response.body == b"trailered body\n"
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # still in step: no trailer bytes
        assert read_response(stream).status == 200


def test_trailers_only_response_passes_through(gateway: Gateway) -> None:
    client = TrailerSocket(gateway.port)
    try:
        stream = client.request("/trailers-only")
        client.read_until(lambda: stream in client.ended)
        assert stream in client.head_ended  # one HEADERS frame with END_STREAM
        assert client.headers[stream][b"grpc-status"] == b"5"
        assert stream not in client.bodies
    finally:
        client.close()
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /trailers-only HTTP/1.1\r\nHost: a\r\n\r\n")
        response = read_response(stream)
        assert (response.status, response.body) == (200, b"")
        assert response.header("grpc-status") == "5"


def test_request_trailers_reach_the_upstream(gateway: Gateway) -> None:
    client = TrailerSocket(gateway.port)
    try:
        stream = client.post_with_trailers("/echo", b"payload", [(b"grpc-timeout", b"1S")])
        client.read_until(lambda: stream in client.ended)
        assert bytes(client.bodies[stream]) == b"payload"
        assert client.trailers[stream] == {b"x-echo-grpc-timeout": b"1S"}
    finally:
        client.close()


# ---------------------------------------------------------------- failures


def test_reset_stream_is_retried_then_502(processes: Processes, tmp_path: Path) -> None:
    upstream = H2Upstream(processes, "resets")
    gateway = processes.gateway(h2_upstream_config(upstream, retry={"attempts": 3}), tmp_path)
    before = upstream.stats()["streams"]
    result = curl("-w", "%{http_code}", "-o", "/dev/null", gateway.url("/reset"))
    assert result.stdout == b"502"
    assert upstream.stats()["streams"] - before == 1 + 3  # 3 tries, and the stats request
    result = curl("-w", "%{http_code}", "-o", "/dev/null", gateway.url("/refuse"))
    assert result.stdout == b"502"
    # The connection outlived the resets: every stream went on it.
    assert curl(gateway.url("/")).returncode == 0
    assert upstream.stats()["gateway_connections"] == 1


def test_goaway_refused_stream_is_retried_on_a_new_connection(
    processes: Processes, tmp_path: Path
) -> None:
    upstream = H2Upstream(processes, "goaway")
    gateway = processes.gateway(h2_upstream_config(upstream), tmp_path)
    assert curl(gateway.url("/")).returncode == 0  # a connection is open and pooled
    result = curl(gateway.url("/goaway-once"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["connection"] > 1
    assert upstream.stats()["gateway_connections"] == 2


def test_goaway_lets_the_streams_below_it_finish(processes: Processes, tmp_path: Path) -> None:
    upstream = H2Upstream(processes, "graceful")
    gateway = processes.gateway(h2_upstream_config(upstream), tmp_path)
    client = H2Socket(gateway.port)
    try:
        slow = client.request("/slow?ms=600")
        time.sleep(0.2)
        goaway = client.request("/goaway-graceful")
        client.read_until(lambda: slow in client.ended and goaway in client.ended)
        assert (client.status[slow], client.status[goaway]) == (200, 200), gateway.stderr()[-3000:]
        first = json.loads(client.bodies[slow])["connection"]
        after = client.request("/")
        client.read_until(lambda: after in client.ended)
        assert json.loads(client.bodies[after])["connection"] != first
    finally:
        client.close()


def test_upstream_death_mid_stream(gateway: Gateway) -> None:
    result = curl("--http2-prior-knowledge", gateway.url("/die-mid-body"))
    assert result.returncode != 0  # cut off: the client must not take it for complete
    result = curl("--http1.1", gateway.url("/reset-mid-body"))
    assert result.returncode != 0
    result = curl(gateway.url("/"))
    assert result.returncode == 0 and json.loads(result.stdout)["upstream"] == "h2a"


def test_websocket_upgrade_to_an_h2_upstream_is_refused(gateway: Gateway) -> None:
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        assert read_response(stream).status == 501


def test_connect_failure_is_a_502(processes: Processes, tmp_path: Path) -> None:
    config = make_config(
        upstreams=[
            {"name": "app", "protocol": "h2", "endpoints": [{"address": f"{HOST}:{free_port()}"}]}
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    gateway = processes.gateway(config, tmp_path)
    result = curl("-w", "%{http_code}", "-o", "/dev/null", gateway.url("/"))
    assert result.stdout == b"502"


def test_a_stream_that_times_out_is_reset_and_the_connection_kept(
    processes: Processes, tmp_path: Path
) -> None:
    upstream = H2Upstream(processes, "timeouts")
    config = h2_upstream_config(upstream, timeouts={"response": "300ms"}, retry={"attempts": 1})
    gateway = processes.gateway(config, tmp_path)
    result = curl("-w", "%{http_code}", "-o", "/dev/null", gateway.url("/slow?ms=3000"))
    assert result.stdout == b"504"
    # Reset (CANCEL) upstream: the stream is gone there, the shared connection stays.
    wait_until(lambda: upstream.stats()["max_concurrent"] >= 1, what="the stream seen")
    assert curl(gateway.url("/")).returncode == 0
    stats = upstream.stats()
    assert (stats["gateway_connections"], stats["gateway_open"]) == (1, 1), stats


# ---------------------------------------------------------------- health checks


def test_active_health_checks_speak_h2(processes: Processes, tmp_path: Path) -> None:
    upstream = H2Upstream(processes, "health")
    health = {
        "path": "/healthz",
        "interval": "200ms",
        "timeout": "1s",
        "healthy_threshold": 1,
        "unhealthy_threshold": 1,
    }
    gateway = processes.gateway(h2_upstream_config(upstream, health=health), tmp_path)

    def state() -> str:
        return gateway.endpoints("app")[upstream.address]["active_health"]

    wait_until(lambda: state() == "healthy", what="healthy")
    upstream.get("/admin/health/down")
    wait_until(lambda: state() == "unhealthy", what="unhealthy over h2")
    result = curl("-w", "%{http_code}", "-o", "/dev/null", gateway.url("/"))
    assert result.stdout == b"503"
    upstream.get("/admin/health/up")
    wait_until(lambda: state() == "healthy", what="healthy again")
    assert re.search(rb'"upstream": "health"', curl(gateway.url("/")).stdout)


# ---------------------------------------------------------------- nghttpd, another implementation


def test_nghttpd_upstream_files_uploads_and_trailers(processes: Processes, tmp_path: Path) -> None:
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    content = os.urandom(3 * MIB)
    (docroot / "blob.bin").write_bytes(content)
    port = free_port()
    argv = ["nghttpd", "--no-tls", "-a", HOST, "-d", str(docroot), "--echo-upload"]
    argv += ["--trailer", "grpc-status: 0", "-m", "8", str(port)]
    processes.start(argv, "nghttpd")
    wait_until(lambda: can_connect(port), what="nghttpd to listen")
    config = make_config(
        upstreams=[{"name": "app", "protocol": "h2", "endpoints": [{"address": f"{HOST}:{port}"}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    gateway = processes.gateway(config, tmp_path / "gateway")
    out = tmp_path / "blob.out"
    result = curl("--http2-prior-knowledge", "-o", str(out), gateway.url("/blob.bin"))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == content
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(2 * MIB))
    result = curl("--http1.1", "--data-binary", f"@{upload}", "-o", str(out), gateway.url("/up"))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == upload.read_bytes()
    client = TrailerSocket(gateway.port)
    try:
        stream = client.request("/blob.bin")
        client.read_until(lambda: stream in client.ended)
        assert client.trailers[stream] == {b"grpc-status": b"0"}
    finally:
        client.close()
    # More streams than nghttpd takes at once (-m 8): all answered.
    result = subprocess.run(
        ["h2load", "-n", "200", "-c", "2", "-m", "20", gateway.url("/blob.bin")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    report = result.stdout.decode()
    assert "status codes: 200 2xx" in report, report + gateway.stderr()


# ---------------------------------------------------------------- reload and drain


def test_reload_lets_streams_in_flight_finish_then_closes_the_connection(
    processes: Processes, tmp_path: Path
) -> None:
    old, new = H2Upstream(processes, "old"), H2Upstream(processes, "new")
    config = h2_upstream_config(old)
    gateway = processes.gateway(config, tmp_path)
    client = H2Socket(gateway.port)
    try:
        slow = client.request("/slow?ms=1200")
        wait_until(lambda: old.stats()["gateway_open"] == 1, what="the slow stream upstream")
        revision = gateway.revision()
        # The same listeners and admin port; the upstream's only endpoint is replaced.
        gateway.reload({**config, "upstreams": h2_upstream_config(new)["upstreams"]})
        wait_until(lambda: gateway.revision() > revision, what="the reload")
        after = client.request("/")
        client.read_until(lambda: slow in client.ended and after in client.ended)
        assert client.status[slow] == 200 and json.loads(client.bodies[slow])["upstream"] == "old"
        assert json.loads(client.bodies[after])["upstream"] == "new"
    finally:
        client.close()
    # Its last stream done, the old endpoint's connection went away (GOAWAY, close).
    wait_until(lambda: old.stats()["gateway_open"] == 0, timeout=5.0, what="the old connection")


def test_sigterm_finishes_streams_in_flight(processes: Processes, tmp_path: Path) -> None:
    upstream = H2Upstream(processes, "drain")
    config = h2_upstream_config(upstream)
    config["drain_timeout"] = "5s"
    gateway = processes.gateway(config, tmp_path)
    client = H2Socket(gateway.port)
    try:
        slow = client.request("/slow?ms=1000")
        wait_until(lambda: upstream.stats()["gateway_open"] == 1, what="the slow stream")
        gateway.process.signal(signal.SIGTERM)
        client.read_until(lambda: slow in client.ended, timeout=5.0)
        assert client.status[slow] == 200
    finally:
        client.close()
    assert gateway.process.wait(10.0) == 0
    wait_until(lambda: upstream.stats()["gateway_open"] == 0, timeout=5.0, what="closed")


# ---------------------------------------------------------------- h2 over TLS (ALPN)


def test_h2_over_tls_with_trailers_and_health_checks(processes: Processes, tmp_path: Path) -> None:
    ca = TestCA()
    ca_path = ca.write(tmp_path / "pki")
    cert, key = ca.issue("h2-upstream").write(tmp_path / "pki", "upstream")  # SAN 127.0.0.1
    tls_args = ("--tls-cert", str(cert), "--tls-key", str(key))
    upstream = H2Upstream(processes, "tls", tls_args=tls_args)
    plain_h1 = H2Upstream(processes, "h1only", tls_args=(*tls_args, "--alpn", "http/1.1"))
    health = {"path": "/healthz", "interval": "200ms", "timeout": "1s", "healthy_threshold": 1}
    config = make_config(
        upstreams=[
            {
                "name": "app",
                "protocol": "h2",
                "tls": {"ca": str(ca_path)},
                "endpoints": [{"address": upstream.address}],
                "health": {**health, "unhealthy_threshold": 1},
            },
            {
                "name": "h1only",
                "protocol": "h2",
                "tls": {"ca": str(ca_path)},
                "endpoints": [{"address": plain_h1.address}],
                "retry": {"attempts": 1},
            },
        ],
        routes=[
            {"match": {"path_prefix": "/h1only/"}, "upstream": "h1only"},
            {"match": {"path_prefix": "/"}, "upstream": "app"},
        ],
    )
    gateway = processes.gateway(config, tmp_path / "gateway")
    result = curl("--http1.1", gateway.url("/"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pseudo"][":scheme"] == "https"
    client = TrailerSocket(gateway.port)
    try:
        stream = client.request("/trailers")
        client.read_until(lambda: stream in client.ended)
        assert client.trailers[stream] == {b"grpc-status": b"0", b"grpc-message": b"all good"}
    finally:
        client.close()
    wait_until(lambda: upstream.stats()["streams"] >= 3, what="probes")  # health over TLS
    assert gateway.endpoints("app")[upstream.address]["active_health"] == "healthy"
    upstream.get("/admin/health/down")
    wait_until(
        lambda: gateway.endpoints("app")[upstream.address]["active_health"] == "unhealthy",
        what="unhealthy over h2 and TLS",
    )
    # An endpoint that does not choose h2 by ALPN is a connect failure, never HTTP/1.1.
    result = curl("-w", "%{http_code}", "-o", "/dev/null", gateway.url("/h1only/x"))
    assert result.stdout == b"502"
    assert "did not agree to HTTP/2 by ALPN" in gateway.stderr()
