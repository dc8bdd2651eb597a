"""TLS to upstreams on a real `dispa run`: a real HTTPS upstream process (upstreams/
tls_upstream.py) with certificates made by a test CA. Verified requests reach it with the
SNI configured; a wrong CA or name is a 502 like a refused connection and counts against
the endpoint; mutual TLS presents the gateway's client certificate; health checks and
WebSocket upgrades go over TLS too; a reload's new ``tls`` block is used at once."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import (
    HOST,
    PYTHON,
    READY_TIMEOUT,
    Gateway,
    Processes,
    free_port,
    http_get,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)

from tests.tls_certs import TestCA

TLS_UPSTREAM = Path(__file__).resolve().parent / "upstreams" / "tls_upstream.py"


class Pki(NamedTuple):
    ca_path: Path
    other_ca_path: Path  # a CA that signed nothing the upstream serves
    server: tuple[Path, Path]  # for api.internal
    ip_server: tuple[Path, Path]  # for 127.0.0.1 (an IP SAN, no DNS name)
    client: tuple[Path, Path]  # CN dispa-gateway, signed by the test CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("upstream-pki")
    ca = TestCA()
    return Pki(
        ca.write(directory),
        TestCA("Another CA").write(directory, "other-ca"),
        ca.issue("api", dns_names=("api.internal",)).write(directory, "api"),
        ca.issue("ip").write(directory, "ip"),
        ca.issue("dispa-gateway", client=True).write(directory, "client"),
    )


class TlsUpstream:
    """The HTTPS upstream process: TLS on ``port``, its plain-HTTP admin on ``admin_port``."""

    def __init__(
        self, processes: Processes, name: str, files: tuple[Path, Path], client_ca: Path | None
    ) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.address = f"{HOST}:{self.port}"
        argv = [PYTHON, str(TLS_UPSTREAM), "--port", str(self.port)]
        argv += ["--admin-port", str(self.admin_port), "--name", name]
        argv += ["--cert", str(files[0]), "--key", str(files[1])]
        if client_ca is not None:
            argv += ["--client-ca", str(client_ca)]
        self.process = processes.start(argv, f"tls-upstream-{name}")
        wait_until(self._ready, timeout=READY_TIMEOUT, what=f"TLS upstream {name} to listen")

    def _ready(self) -> bool:
        if not self.process.alive():
            raise AssertionError(f"TLS upstream exited: {self.process.stderr_text()}")
        try:
            return http_get(f"http://{HOST}:{self.admin_port}/stats", timeout=1.0)[0] == 200
        except OSError:
            return False

    def stats(self) -> dict:
        return json.loads(http_get(f"http://{HOST}:{self.admin_port}/stats")[1])

    def set_health(self, up: bool) -> None:
        path = "/health/up" if up else "/health/down"
        assert http_get(f"http://{HOST}:{self.admin_port}{path}", method="POST")[0] == 200


@pytest.fixture(scope="module")
def upstream(module_processes: Processes, pki: Pki) -> TlsUpstream:
    return TlsUpstream(module_processes, "api", pki.server, None)


@pytest.fixture(scope="module")
def ip_upstream(module_processes: Processes, pki: Pki) -> TlsUpstream:
    return TlsUpstream(module_processes, "ip", pki.ip_server, None)


@pytest.fixture(scope="module")
def mtls_upstream(module_processes: Processes, pki: Pki) -> TlsUpstream:
    return TlsUpstream(module_processes, "mtls", pki.server, client_ca=pki.ca_path)


def config_for(address: str, tls: dict, **upstream: object) -> dict:
    return make_config(
        upstreams=[
            {
                "name": "api",
                "endpoints": [{"address": address}],
                "tls": tls,
                # One failure ejects (the only endpoint too): "treated as failing" is visible.
                "outlier": {"consecutive_failures": 1, "max_ejected_percent": 100},
                "retry": {"attempts": 1},
                **upstream,
            }
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "api"}],
    )


def get(gateway: Gateway, path: str = "/hello") -> tuple[int, bytes]:
    return http_get(gateway.url(path))


def seen_by_upstream(gateway: Gateway, path: str = "/hello") -> dict:
    status, body = get(gateway, path)
    assert status == 200, body
    return json.loads(body)


# ---------------------------------------------------------------- verified requests


def test_requests_reach_a_verified_upstream_with_the_configured_sni(
    processes: Processes, tmp_path: Path, upstream: TlsUpstream, pki: Pki
) -> None:
    tls = {"ca": str(pki.ca_path), "server_name": "api.internal"}
    gateway = processes.gateway(config_for(upstream.address, tls), tmp_path)
    for _ in range(3):
        assert seen_by_upstream(gateway) == {
            "upstream": "api",
            "path": "/hello",
            "sni": "api.internal",
            "client": None,
        }
    # Pooled keep-alive: the TLS handshake is not paid per request.
    assert upstream.stats()["handshakes"] < 3 + 1


def test_an_ip_endpoint_is_verified_by_its_ip_and_sends_no_sni(
    processes: Processes, tmp_path: Path, ip_upstream: TlsUpstream, pki: Pki
) -> None:
    gateway = processes.gateway(config_for(ip_upstream.address, {"ca": str(pki.ca_path)}), tmp_path)
    assert seen_by_upstream(gateway)["sni"] is None


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"server_name": "other.internal"}, id="wrong-server-name"),
        pytest.param({"server_name": "api.internal", "ca": "OTHER"}, id="wrong-ca"),
    ],
)
def test_failed_verification_is_a_502_like_a_refused_connection(
    processes: Processes, tmp_path: Path, upstream: TlsUpstream, pki: Pki, bad: dict
) -> None:
    tls = {"ca": str(pki.ca_path), **bad}
    if tls["ca"] == "OTHER":
        tls["ca"] = str(pki.other_ca_path)
    refused_address = f"{HOST}:{free_port()}"  # nothing listens there
    config = config_for(upstream.address, tls)
    config["upstreams"].append(
        {"name": "refused", "endpoints": [{"address": refused_address}], "retry": {"attempts": 1}}
    )
    config["routes"].insert(0, {"match": {"path_prefix": "/refused"}, "upstream": "refused"})
    gateway = processes.gateway(config, tmp_path)

    status, body = get(gateway)
    refused_status, refused_body = get(gateway, "/refused")
    assert (status, body) == (refused_status, refused_body)
    assert status == 502

    endpoint = gateway.endpoints("api")[upstream.address]
    assert endpoint["ejected"] is True and endpoint["healthy"] is False
    stderr = gateway.stderr()
    lines = [line for line in stderr.splitlines() if "certificate verification failed" in line]
    assert len(lines) == 1, stderr
    assert f"endpoint {upstream.address} of upstream api" in lines[0]
    assert "Traceback" not in stderr


def test_mutual_tls_presents_the_client_certificate(
    processes: Processes, tmp_path: Path, mtls_upstream: TlsUpstream, pki: Pki
) -> None:
    tls = {"ca": str(pki.ca_path), "server_name": "api.internal"}
    without = processes.gateway(config_for(mtls_upstream.address, tls), tmp_path / "without")
    assert get(without)[0] == 502  # the upstream refuses a client without a certificate
    # The alert, or, when the upstream's close lands on our unread request and becomes a
    # reset that swallows the alert, the hint to set a client certificate.
    wait_until(
        lambda: (
            "ended the TLS handshake with alert 'certificate required'" in without.stderr()
            or "set its tls.client_cert" in without.stderr()
        ),
        what="the log to say why the upstream refused",
    )

    tls = {**tls, "client_cert": str(pki.client[0]), "client_key": str(pki.client[1])}
    gateway = processes.gateway(config_for(mtls_upstream.address, tls), tmp_path / "with")
    assert seen_by_upstream(gateway)["client"] == "dispa-gateway"


# ---------------------------------------------------------------- health, WebSocket, reload


def test_health_checks_go_over_tls(
    processes: Processes, tmp_path: Path, upstream: TlsUpstream, pki: Pki
) -> None:
    tls = {"ca": str(pki.ca_path), "server_name": "api.internal"}
    health = {
        "path": "/healthz",
        "interval": "200ms",
        "timeout": "1s",
        "healthy_threshold": 1,
        "unhealthy_threshold": 1,
    }
    config = config_for(upstream.address, tls, health=health)
    gateway = processes.gateway(config, tmp_path)

    def active_health() -> str:
        return gateway.endpoints("api")[upstream.address]["active_health"]

    try:
        upstream.set_health(False)
        wait_until(lambda: active_health() == "unhealthy", what="the endpoint to turn unhealthy")
        upstream.set_health(True)
        wait_until(lambda: active_health() == "healthy", what="the endpoint to turn healthy")
    finally:
        upstream.set_health(True)

    # A probe that cannot verify the upstream fails like one that cannot connect.
    config["upstreams"][0]["tls"] = {"ca": str(pki.other_ca_path), "server_name": "api.internal"}
    gateway.reload(config)
    wait_until(lambda: active_health() == "unhealthy", what="the unverifiable endpoint to fail")


def test_websocket_upgrade_to_a_tls_upstream(
    processes: Processes, tmp_path: Path, upstream: TlsUpstream, pki: Pki
) -> None:
    tls = {"ca": str(pki.ca_path), "server_name": "api.internal"}
    gateway = processes.gateway(config_for(upstream.address, tls), tmp_path)
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: api.internal\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        response = read_response(stream)
        assert response.status == 101
        # The key of RFC 6455, section 1.3, and its answer, computed by the upstream.
        assert response.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        sock.sendall(b"tunnelled bytes")
        echoed = b""
        while len(echoed) < len(b"tunnelled bytes"):
            chunk = stream.read1(1024)
            assert chunk, "the tunnel closed before the echo came back"
            echoed += chunk
        assert echoed == b"tunnelled bytes"
        sock.shutdown(socket.SHUT_WR)


def test_reload_with_a_new_tls_block_uses_it_at_once(
    processes: Processes, tmp_path: Path, upstream: TlsUpstream, pki: Pki
) -> None:
    wrong = {"ca": str(pki.other_ca_path), "server_name": "api.internal"}
    # No ejection here: the test is about which context new connections use.
    no_ejection = {"consecutive_failures": 0}
    config = config_for(upstream.address, wrong, outlier=no_ejection)
    gateway = processes.gateway(config, tmp_path)
    assert get(gateway)[0] == 502

    revision = gateway.revision()
    config["upstreams"][0]["tls"] = {"ca": str(pki.ca_path), "server_name": "api.internal"}
    gateway.reload(config)
    wait_until(lambda: gateway.revision() > revision, what="the reload to apply")
    assert seen_by_upstream(gateway)["sni"] == "api.internal"
