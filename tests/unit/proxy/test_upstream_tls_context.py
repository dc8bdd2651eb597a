"""The upstream TLS client context, and pools that connect with it to a real in-process TLS
server on loopback: verification, SNI, ALPN, client certificates, failures and reloads."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest

from dispa.config.schema import Upstream, UpstreamTls
from dispa.proxy.upstream.connection import EndpointPool
from dispa.proxy.upstream.pools import UpstreamSet
from dispa.proxy.upstream.tls import (
    UpstreamTlsContext,
    UpstreamTlsError,
    client_context,
    describe_handshake_error,
    server_name_for,
)
from tests.tls_certs import TestCA


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def files(tmp_path: Path, ca: TestCA) -> dict[str, Path]:
    server_cert, server_key = ca.issue("api", dns_names=("api.internal",)).write(tmp_path, "api")
    client_cert, client_key = ca.issue("client-7", client=True).write(tmp_path, "client")
    return {
        "ca": ca.write(tmp_path),
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


class TlsServer:
    """A loopback TLS server that records each connection's SNI, ALPN and client CN."""

    def __init__(self, files: dict[str, Path], *, alpn=(), client_ca: bool = False) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(files["server_cert"], files["server_key"])
        if alpn:
            self.context.set_alpn_protocols(list(alpn))
        if client_ca:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cafile=files["ca"])
        self.sni: list[str | None] = []
        self.context.sni_callback = lambda _ssl, name, _context: self.sni.append(name)
        self.seen: list[dict] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> TlsServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert() or {}
        subject = dict(pair[0] for pair in peer.get("subject", ()))
        self.seen.append(
            {"alpn": ssl_object.selected_alpn_protocol(), "client": subject.get("commonName")}
        )
        writer.close()


def tls(**fields: object) -> UpstreamTls:
    return UpstreamTls.model_validate(fields)


def pool_for(server: TlsServer, section: UpstreamTls, host: str = "127.0.0.1") -> EndpointPool:
    upstream = Upstream.model_validate(
        {"name": "api", "endpoints": [{"address": f"{host}:{server.port}"}]}
    ).model_copy(update={"tls": section})
    endpoint_tls = UpstreamTlsContext(upstream).for_endpoint(host)
    return EndpointPool("127.0.0.1", server.port, 4, 60.0, tls=endpoint_tls)


async def connect_and_wait(pool: EndpointPool, server: TlsServer) -> None:
    connection = await pool.connect(2.0)
    await asyncio.wait_for(_until(lambda: server.seen), 2.0)
    connection.close()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- the context itself


def test_verifying_context_by_default() -> None:
    context = client_context(tls())
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_verify_off_checks_neither_chain_nor_name() -> None:
    context = client_context(tls(verify=False))
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_ca_file_is_the_trust_store(files: dict[str, Path], ca: TestCA) -> None:
    context = client_context(tls(ca=str(files["ca"]), min_version="1.3"))
    subjects = [dict(p[0] for p in c["subject"])["commonName"] for c in context.get_ca_certs()]
    assert subjects == ["Dispa Test CA"]
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


def test_a_file_that_does_not_load_names_its_field(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(UpstreamTlsError, match=r"^tls\.ca: cannot load .*junk\.pem"):
        client_context(tls(ca=str(junk)))
    section = tls(client_cert=str(junk), client_key=str(junk))
    with pytest.raises(UpstreamTlsError, match=r"^tls\.client_cert: cannot load"):
        client_context(section)


def test_server_name_defaults_to_the_endpoint_host() -> None:
    assert server_name_for(tls(), "api.internal") == "api.internal"
    assert server_name_for(tls(server_name="x.test"), "10.0.0.1") == "x.test"
    # An IP address goes as server_hostname: checked against IP SANs, never sent as SNI.
    assert server_name_for(tls(), "10.0.0.1") == "10.0.0.1"


# ---------------------------------------------------------------- handshakes on loopback


async def test_verified_connection_sends_sni_and_offers_alpn(files: dict[str, Path]) -> None:
    async with TlsServer(files, alpn=("h2", "http/1.1")) as server:
        await connect_and_wait(pool_for(server, tls(ca=str(files["ca"])), "api.internal"), server)
        assert server.sni == ["api.internal"]
        assert server.seen == [{"alpn": None, "client": None}]  # HTTP/1.1 pools offer none

        upstream = Upstream.model_validate(
            {"name": "api", "endpoints": [{"address": "api.internal:1"}]}
        ).model_copy(update={"tls": tls(ca=str(files["ca"]))})
        h2_tls = UpstreamTlsContext(upstream, alpn=["h2"]).for_endpoint("api.internal")
        h2_pool = EndpointPool("127.0.0.1", server.port, 4, 60.0, tls=h2_tls)
        server.seen.clear()
        await connect_and_wait(h2_pool, server)
        assert server.seen[0]["alpn"] == "h2"


async def test_an_ip_endpoint_sends_no_sni(files: dict[str, Path]) -> None:
    async with TlsServer(files) as server:
        await connect_and_wait(pool_for(server, tls(verify=False)), server)
        assert server.sni == [None]


async def test_client_certificate_is_presented(files: dict[str, Path]) -> None:
    section = tls(
        ca=str(files["ca"]),
        server_name="api.internal",
        client_cert=str(files["client_cert"]),
        client_key=str(files["client_key"]),
    )
    async with TlsServer(files, client_ca=True) as server:
        await connect_and_wait(pool_for(server, section), server)
        assert server.seen[0]["client"] == "client-7"


async def test_wrong_name_fails_like_a_refused_connection_and_is_logged_once(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    section = tls(ca=str(files["ca"]), server_name="other.internal")
    async with TlsServer(files) as server:
        pool = pool_for(server, section)
        with (
            caplog.at_level(logging.WARNING, logger="dispa.upstream"),
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            await pool.connect(2.0)
        records = [r for r in caplog.records if r.name == "dispa.upstream"]
        assert len(records) == 1
        message = records[0].getMessage()
        assert message.startswith(f"endpoint 127.0.0.1:{server.port} of upstream api: ")
        assert "certificate verification failed" in message and "other.internal" in message
        assert records[0].exc_info is None  # no traceback for an operator to wade through
        assert pool.open_connections == 0


async def test_unknown_ca_fails_verification(files: dict[str, Path]) -> None:
    async with TlsServer(files) as server:
        pool = pool_for(server, tls(server_name="api.internal"))  # the system store
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            await pool.connect(2.0)
        assert describe_handshake_error(caught.value) == (
            "certificate verification failed: unable to get local issuer certificate"
        )


# ---------------------------------------------------------------- reloads


def upstream_config(section: dict | None) -> Upstream:
    data: dict = {"name": "api", "endpoints": [{"address": "api.internal:8443"}]}
    if section is not None:
        data["tls"] = section
    return Upstream.model_validate(data)


async def test_reload_with_changed_tls_gets_a_new_pool_and_context(files: dict[str, Path]) -> None:
    upstreams = UpstreamSet()
    await upstreams.commit(upstreams.prepare((upstream_config({"ca": str(files["ca"])}),)))
    endpoint = upstreams.by_name["api"].endpoints[0]
    first_pool = endpoint.pool
    assert first_pool.tls.server_name == "api.internal"

    # Another change to the upstream, same tls block: the warm pool stays.
    same_tls = upstream_config({"ca": str(files["ca"])}).model_copy(update={"lb": "random"})
    await upstreams.commit(upstreams.prepare((same_tls,)))
    assert endpoint.pool is first_pool

    changed = upstream_config({"ca": str(files["ca"]), "server_name": "b.internal"})
    await upstreams.commit(upstreams.prepare((changed,)))
    assert endpoint.pool is not first_pool
    assert first_pool.retired  # its connections finish their work, then close
    assert endpoint.pool.tls.server_name == "b.internal"
    assert endpoint.pool.tls.context is not first_pool.tls.context

    await upstreams.commit(upstreams.prepare((upstream_config(None),)))
    assert endpoint.pool.tls is None  # TLS turned off: plain TCP from now on
    await upstreams.stop()


async def test_a_tls_file_gone_since_validation_refuses_the_snapshot_unchanged(
    files: dict[str, Path], tmp_path: Path
) -> None:
    upstreams = UpstreamSet()
    await upstreams.commit(upstreams.prepare((upstream_config({"ca": str(files["ca"])}),)))
    endpoint = upstreams.by_name["api"].endpoints[0]
    pool = endpoint.pool
    gone = upstream_config({"ca": str(tmp_path / "removed.pem"), "server_name": "b.internal"})
    with pytest.raises(UpstreamTlsError, match=r"^upstream api: tls\.ca: cannot load"):
        upstreams.prepare((gone,))
    assert endpoint.pool is pool and not pool.retired
    await upstreams.stop()


async def test_a_reset_before_the_first_response_hints_at_a_missing_client_certificate(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # A TLS 1.3 server's "certificate required" alert can be lost to a reset; the log still
    # says what to check. Once a response has come back, a reset is an ordinary one.
    async with TlsServer(files) as server:
        without_cert = pool_for(server, tls(ca=str(files["ca"]), server_name="api.internal"))
        first = await without_cert.connect(2.0)
        served = await without_cert.connect(2.0)
        without_cert.put(served, now=1.0)  # it answered once: not the first response
        with caplog.at_level(logging.WARNING, logger="dispa.upstream"):
            first.connection_lost(ConnectionResetError())
            served.connection_lost(ConnectionResetError())
        messages = [r.getMessage() for r in caplog.records if r.name == "dispa.upstream"]
        assert messages == [
            f"endpoint 127.0.0.1:{server.port} of upstream api reset the TLS connection "
            "before its first response; if it requires client certificates, "
            "set its tls.client_cert"
        ]
        first.transport.close()
        served.transport.close()
