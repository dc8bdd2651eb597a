"""ALPN on TLS listeners, with real clients: curl, grpcio over TLS, Python's ssl and
openssl s_client. A listener without `alpn` accepts h2 and http/1.1 (as a plaintext one
accepts both), so HTTP/2 and gRPC clients work at once; a client that offers only
protocols a listener refuses is named in the log, once a minute per listener at most."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import grpc
import pytest
from conftest import HOST, Gateway, Processes, Upstream, curl, make_config
from test_grpc import CHANNEL_OPTIONS, GrpcUpstream, unary

from tests.tls_certs import TestCA

NAME = "grpc.test"
REFUSED = "offered only ALPN protocols this listener refuses"


class Pki(NamedTuple):
    ca_pem: bytes
    ca_path: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("alpn-pki")
    ca = TestCA()
    cert, key = ca.issue(NAME, dns_names=(NAME,)).write(directory, "server")
    return Pki(ca.cert_pem, ca.write(directory), cert, key)


@pytest.fixture(scope="module")
def grpc_upstream(module_processes: Processes) -> GrpcUpstream:
    return GrpcUpstream(module_processes, "alpn")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes,
    tmp_path_factory: pytest.TempPathFactory,
    pki: Pki,
    grpc_upstream: GrpcUpstream,
    upstream_a: Upstream,
) -> Gateway:
    certificates = [{"cert": str(pki.cert), "key": str(pki.key)}]
    config = make_config(
        upstreams=[
            {"name": "demo", "endpoints": [{"address": upstream_a.address}]},
            {"name": "grpc", "protocol": "h2", "endpoints": [{"address": grpc_upstream.address}]},
        ],
        routes=[
            {"match": {"path_prefix": "/test.Echo/"}, "upstream": "grpc"},
            {"match": {"path_prefix": "/"}, "upstream": "demo"},
        ],
        listeners=[
            {"name": "default", "tls": {"certificates": certificates}},  # alpn left out
            {"name": "h1only", "tls": {"certificates": certificates, "alpn": ["http/1.1"]}},
            {"name": "spare", "tls": {"certificates": certificates}},
        ],
    )
    return module_processes.gateway(config, tmp_path_factory.mktemp("alpn"))


def https_version(gateway: Gateway, listener: str, pki: Pki, *args: str) -> bytes:
    port = gateway.ports[listener]
    result = curl(
        "--cacert",
        str(pki.ca_path),
        "--resolve",
        f"{NAME}:{port}:{HOST}",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        *args,
        f"https://{NAME}:{port}/",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def tls_channel(gateway: Gateway, listener: str, pki: Pki) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
    options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", NAME)]
    return grpc.secure_channel(f"{HOST}:{gateway.ports[listener]}", credentials, options)


def s_client(port: int, *args: str) -> str:
    """One handshake with openssl s_client; what it printed."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", NAME, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.stdout.decode(errors="replace")


def refusal_lines(gateway: Gateway, listener: str) -> list[str]:
    return [
        line
        for line in gateway.stderr().splitlines()
        if REFUSED in line and f"listener {listener}:" in line
    ]


def wait_for_lines(gateway: Gateway, listener: str, count: int) -> list[str]:
    """The listener's refusal lines once there are ``count`` (bounded wait); a log line
    is written after the handshake, so it may trail the client by a moment."""
    deadline = time.monotonic() + 5
    lines = refusal_lines(gateway, listener)
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = refusal_lines(gateway, listener)
    return lines


# ---------------------------------------------------------------- the default: h2 and http/1.1


def test_curl_http2_gets_http2_from_a_default_listener(gateway: Gateway, pki: Pki) -> None:
    assert https_version(gateway, "default", pki, "--http2") == b"2"


def test_grpc_over_tls_works_on_a_default_listener(gateway: Gateway, pki: Pki) -> None:
    with tls_channel(gateway, "default", pki) as channel:
        assert unary(channel, "/test.Echo/Unary")(b"over tls", timeout=10) == b"over tls"


def tls_get(port: int, pki: Pki, alpn: list[str]) -> tuple[str | None, bytes]:
    """(the protocol chosen, the first bytes of the answer) of a GET over Python's ssl."""
    context = ssl.create_default_context(cafile=str(pki.ca_path))
    if alpn:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection((HOST, port), timeout=5)
    with context.wrap_socket(raw, server_hostname=NAME) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: grpc.test\r\nConnection: close\r\n\r\n")
        return tls.selected_alpn_protocol(), tls.recv(12)


def test_http11_clients_still_get_http11(gateway: Gateway, pki: Pki) -> None:
    assert https_version(gateway, "default", pki, "--http1.1") == b"1.1"
    port = gateway.ports["default"]
    assert tls_get(port, pki, ["http/1.1"]) == ("http/1.1", b"HTTP/1.1 200")
    # A client that offers no ALPN at all is HTTP/1.1, as before, and not worth a line.
    assert tls_get(port, pki, []) == (None, b"HTTP/1.1 200")
    assert refusal_lines(gateway, "default") == []


# ---------------------------------------------------------------- refused offers, in the log


def test_an_offer_the_listener_refuses_is_logged_once_a_minute(gateway: Gateway) -> None:
    port = gateway.ports["spare"]
    printed = s_client(port, "-alpn", "h3,spdy/3")
    assert "No ALPN negotiated" in printed
    lines = wait_for_lines(gateway, "spare", 1)
    assert len(lines) == 1, lines
    line = lines[0]
    assert "WARNING" in line
    assert f"client {HOST}:" in line
    assert "[h3, spdy/3]" in line  # what it offered
    assert "[h2, http/1.1]" in line  # what the listener accepts
    # Again within the minute: no second line for this listener.
    s_client(port, "-alpn", "h3")
    time.sleep(0.5)
    assert len(refusal_lines(gateway, "spare")) == 1


def test_a_grpc_client_refused_by_an_http11_listener_is_told_in_the_log(
    gateway: Gateway, pki: Pki
) -> None:
    """The trap of the old default: gRPC offers only h2, gets no ALPN, and fails; the log
    now says which client, and what it offered."""
    with tls_channel(gateway, "h1only", pki) as channel, pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/test.Echo/Unary")(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    lines = wait_for_lines(gateway, "h1only", 1)
    assert lines and "[h2]" in lines[0] and "[http/1.1]" in lines[0], lines
