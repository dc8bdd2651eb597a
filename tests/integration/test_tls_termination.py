"""TLS termination on a real `dispa run`, with real curl and Python ssl clients: SNI picks
each name's certificate, the protocol floor and ALPN hold, mTLS refuses or identifies
clients, renewed certificate files are served after SIGHUP without dropping connections,
and bad TLS files are config errors with their path."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import (
    HOST,
    PYTHON,
    REPO,
    Gateway,
    Processes,
    RawResponse,
    Upstream,
    curl,
    make_config,
    raw_connection,
    read_response,
    received_headers,
    wait_until,
)

from tests.tls_certs import Issued, TestCA, other_key_pem

IDENTITY_HEADER = "X-Client-Identity"


class Pki(NamedTuple):
    directory: Path
    ca: TestCA
    ca_path: Path
    a: Issued  # a.test
    b: Issued  # *.b.test
    client: Issued
    client_files: tuple[Path, Path]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    ca = TestCA()
    a = ca.issue("a.test", dns_names=("a.test",))
    b = ca.issue("b.test", dns_names=("*.b.test",))
    client = ca.issue("client-1", uris=("spiffe://dispa.test/client-1",), client=True)
    a.write(directory, "a")
    b.write(directory, "b")
    return Pki(directory, ca, ca.write(directory), a, b, client, client.write(directory, "client"))


def tls_config(upstream: Upstream, pki: Pki, **tls) -> dict:
    section = {
        "certificates": [
            {"cert": str(pki.directory / "a.pem"), "key": str(pki.directory / "a.key")},
            {"cert": str(pki.directory / "b.pem"), "key": str(pki.directory / "b.key")},
        ],
        **tls,
    }
    return make_config(
        upstreams=[{"name": "demo", "endpoints": [{"address": upstream.address}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "demo"}],
        listeners=[{"name": "secure", "tls": section}],
    )


def https(gateway: Gateway, name: str, path: str, pki: Pki, *args: str):
    """curl, verifying the gateway's certificate for ``name`` against the test CA."""
    port = gateway.port
    return curl(
        "--cacert",
        str(pki.ca_path),
        "--resolve",
        f"{name}:{port}:{HOST}",
        *args,
        f"https://{name}:{port}{path}",
    )


class TlsClient:
    """One TLS connection with Python's ssl: certificate seen, ALPN, requests on it."""

    def __init__(
        self,
        port: int,
        server_name: str | None,
        *,
        alpn: tuple[str, ...] = (),
        client: tuple[Path, Path] | None = None,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the certificate picked is what the tests look at
        context.verify_mode = ssl.CERT_NONE
        if alpn:
            context.set_alpn_protocols(list(alpn))
        if client is not None:
            context.load_cert_chain(*client)
        raw = socket.create_connection((HOST, port), timeout=5.0)
        self.sock = context.wrap_socket(raw, server_hostname=server_name)
        self.stream = self.sock.makefile("rb")
        self.certificate = self.sock.getpeercert(binary_form=True)

    def get(self, path: str, *headers: str) -> RawResponse:
        lines = "".join(f"{line}\r\n" for line in headers)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: tls.test\r\n{lines}\r\n".encode())
        return read_response(self.stream)

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def certificate_for(port: int, server_name: str | None) -> bytes:
    client = TlsClient(port, server_name)
    try:
        return client.certificate
    finally:
        client.close()


# ---------------------------------------------------------------- SNI, versions, ALPN


def test_sni_serves_each_name_its_certificate_and_the_first_by_default(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    gateway = processes.gateway(tls_config(upstream_a, pki), tmp_path)
    # curl checks that the certificate is valid for the name it asked for.
    for name in ("a.test", "x.b.test"):
        result = https(gateway, name, "/headers", pki)
        assert result.returncode == 0, result.stderr
        seen = received_headers(result.stdout)
        assert seen["x-forwarded-proto"] == "https"
    assert certificate_for(gateway.port, "a.test") == pki.a.der
    assert certificate_for(gateway.port, "x.b.test") == pki.b.der
    # Unknown names, a name two labels under the wildcard, and no SNI get the first one.
    for name in ("unknown.test", "y.x.b.test", None):
        assert certificate_for(gateway.port, name) == pki.a.der, name
    refused = https(gateway, "unknown.test", "/", pki)
    assert refused.returncode == 60 and b"unknown.test" in refused.stderr


def test_alpn_negotiates_http11_even_when_h2_is_offered(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    # An HTTP/1.1-only listener (the default accepts h2 too: test_tls_alpn.py).
    gateway = processes.gateway(tls_config(upstream_a, pki, alpn=["http/1.1"]), tmp_path)
    client = TlsClient(gateway.port, "a.test", alpn=("h2", "http/1.1"))
    try:
        assert client.sock.selected_alpn_protocol() == "http/1.1"
        response = client.get("/")
        assert response.status == 200 and response.header("x-upstream") == "alpha"
    finally:
        client.close()
    result = https(
        gateway, "a.test", "/", pki, "--http2", "-w", "%{http_version}", "-o", "/dev/null"
    )
    assert result.returncode == 0 and result.stdout == b"1.1", result


def test_min_version_13_refuses_a_tls12_client(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    gateway = processes.gateway(tls_config(upstream_a, pki, min_version="1.3"), tmp_path)
    old = https(gateway, "a.test", "/", pki, "--tls-max", "1.2")
    assert old.returncode == 35, old  # SSL connect error: no handshake
    new = https(gateway, "a.test", "/", pki, "--tlsv1.3", "-w", "%{http_code}", "-o", "/dev/null")
    assert new.returncode == 0 and new.stdout == b"200", new
    # A TLS 1.2 listener (the default) takes both.
    plain = processes.gateway(tls_config(upstream_a, pki), tmp_path / "default")
    assert https(plain, "a.test", "/", pki, "--tls-max", "1.2").returncode == 0


# ---------------------------------------------------------------- client certificates


def test_required_client_certificate_and_its_forwarded_identity(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    client_auth = {"mode": "required", "ca": str(pki.ca_path), "forward_header": IDENTITY_HEADER}
    gateway = processes.gateway(tls_config(upstream_a, pki, client_auth=client_auth), tmp_path)
    refused = https(gateway, "a.test", "/", pki)
    assert refused.returncode != 0 and refused.stdout == b"", refused
    # A certificate from another CA is refused too.
    stranger = TestCA().issue("stranger", client=True).write(tmp_path / "other", "stranger")
    cert, key = (str(p) for p in stranger)
    assert https(gateway, "a.test", "/", pki, "--cert", cert, "--key", key).returncode != 0

    cert, key = (str(p) for p in pki.client_files)
    result = https(
        gateway,
        "a.test",
        "/headers",
        pki,
        "--cert",
        cert,
        "--key",
        key,
        "-H",
        f'{IDENTITY_HEADER}: Subject="CN=admin"',
    )
    assert result.returncode == 0, result.stderr
    seen = received_headers(result.stdout)
    assert seen[IDENTITY_HEADER.lower()] == (
        'Subject="CN=client-1,O=Dispa Tests";URI="spiffe://dispa.test/client-1"'
    )
    assert gateway.process.alive()


def test_optional_client_certificate_accepts_both_and_strips_forgeries(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    client_auth = {"mode": "optional", "ca": str(pki.ca_path), "forward_header": IDENTITY_HEADER}
    gateway = processes.gateway(tls_config(upstream_a, pki, client_auth=client_auth), tmp_path)
    anonymous = TlsClient(gateway.port, "a.test")
    identified = TlsClient(gateway.port, "a.test", client=pki.client_files)
    try:
        forged = f'{IDENTITY_HEADER}: Subject="CN=admin"'
        response = anonymous.get("/headers", forged)
        assert response.status == 200
        assert IDENTITY_HEADER.lower() not in received_headers(response.body)
        response = identified.get("/headers", forged)
        assert response.status == 200
        assert received_headers(response.body)[IDENTITY_HEADER.lower()].startswith(
            'Subject="CN=client-1,O=Dispa Tests"'
        )
    finally:
        anonymous.close()
        identified.close()


# ---------------------------------------------------------------- renewal on SIGHUP


def test_renewed_certificate_is_served_to_new_connections_after_sighup(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    gateway = processes.gateway(tls_config(upstream_a, pki), tmp_path)
    revision = gateway.revision()
    before = TlsClient(gateway.port, "a.test")
    try:
        assert before.certificate == pki.a.der
        assert before.get("/").status == 200

        renewed = pki.ca.issue("a.test renewed", dns_names=("a.test",))
        renewed.write(pki.directory, "a")  # same paths, new certificate and key
        gateway.process.signal(signal.SIGHUP)
        wait_until(
            lambda: certificate_for(gateway.port, "a.test") == renewed.der,
            what="a new connection to get the renewed certificate",
        )
        # The connection opened before keeps its session and keeps serving.
        response = before.get("/")
        assert response.status == 200 and response.header("x-upstream") == "alpha"
        assert before.sock.getpeercert(binary_form=True) == pki.a.der
        # The config itself is equal: no new revision, and the other certificate stays.
        assert gateway.revision() == revision
        assert certificate_for(gateway.port, "x.b.test") == pki.b.der
        assert https(gateway, "a.test", "/", pki).returncode == 0

        # A half-written renewal (a key that is not the certificate's) is refused whole.
        (pki.directory / "a.key").write_bytes(other_key_pem())
        gateway.process.signal(signal.SIGHUP)
        wait_until(
            lambda: "listeners[0].tls.certificates[0].key:" in gateway.stderr(),
            what="the refusal to be logged",
        )
        assert "refused, the previous config keeps serving" in gateway.stderr()
        assert certificate_for(gateway.port, "a.test") == renewed.der
        assert before.get("/").status == 200
    finally:
        before.close()


# ---------------------------------------------------------------- config errors


def test_validate_names_bad_tls_files_without_a_traceback(
    tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    config = tls_config(
        upstream_a, pki, client_auth={"mode": "required", "ca": str(tmp_path / "no-ca.pem")}
    )
    (pki.directory / "b.key").write_bytes(other_key_pem())
    (pki.directory / "a.pem").unlink()
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [PYTHON, "-m", "dispa", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert f"listeners[0].tls.certificates[0].cert: cannot read {pki.directory}/a.pem" in (
        result.stderr
    )
    assert (
        f"listeners[0].tls.certificates[1].key: {pki.directory}/b.key is not the key of the "
        f"certificate in {pki.directory}/b.pem" in result.stderr
    )
    assert "listeners[0].tls.client_auth.ca: cannot read" in result.stderr
    assert "3 problems in config" in result.stderr


def test_turning_tls_on_keeps_the_socket_and_drains_plain_connections(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, pki: Pki
) -> None:
    secure = tls_config(upstream_a, pki)
    plain = json.loads(json.dumps(secure))
    del plain["listeners"][0]["tls"]
    gateway = processes.gateway(plain, tmp_path)
    revision = gateway.revision()
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n")
        assert read_response(stream).status == 200
        gateway.reload(secure)  # same address, now with TLS
        wait_until(lambda: gateway.revision() == revision + 1, what="the reload")
        assert certificate_for(gateway.port, "a.test") == pki.a.der
        # The plain connection accepted before the reload was idle: it is closed, so the
        # client reconnects and gets what is configured now (TLS), not plain HTTP forever.
        sock.settimeout(5.0)
        assert sock.recv(1) == b""
    assert https(gateway, "x.b.test", "/", pki).returncode == 0
