"""TLS on listeners without sockets: the config section and its file checks, certificate
choice by name, renewal detection, and the client identity and its forwarded header."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway
from dispa.config.schema import Tls
from dispa.proxy.client_identity import ClientIdentity, peer_identity, with_identity_header
from dispa.proxy.tls import (
    ListenerTls,
    TlsSetupError,
    build_certificates,
    certificate_names,
)
from tests.tls_certs import TestCA, other_key_pem


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def files(tmp_path: Path, ca: TestCA) -> dict[str, Path]:
    """A CA, a certificate for a.test and www.a.test, and one for *.b.test."""
    a_cert, a_key = ca.issue("a", dns_names=("a.test", "www.a.test")).write(tmp_path, "a")
    b_cert, b_key = ca.issue("b", dns_names=("*.b.test",)).write(tmp_path, "b")
    return {"ca": ca.write(tmp_path), "a": a_cert, "a_key": a_key, "b": b_cert, "b_key": b_key}


def gateway_with_tls(tls: dict) -> dict:
    return {
        "listeners": [{"name": "public", "address": "127.0.0.1:8443", "tls": tls}],
        "routes": [{"direct_response": {"status": 200}}],
    }


def problems_of(tls: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_gateway(gateway_with_tls(tls))
    return caught.value.problems


def two_certificates(files: dict[str, Path]) -> dict:
    return {
        "certificates": [
            {"cert": str(files["a"]), "key": str(files["a_key"])},
            {"cert": str(files["b"]), "key": str(files["b_key"])},
        ]
    }


# ---------------------------------------------------------------- config


def test_defaults_and_yaml_scalars(files: dict[str, Path]) -> None:
    tls = build_gateway(gateway_with_tls(two_certificates(files))).listeners[0].tls
    # h2 and http/1.1 by default, as a plaintext listener accepts both (gRPC needs h2).
    assert (tls.min_version, tls.alpn, tls.client_auth.mode) == ("1.2", ("h2", "http/1.1"), "off")
    assert tls.client_auth.ca is None and tls.client_auth.forward_header is None
    # YAML reads `min_version: 1.3` as a number and `mode: off` as false: both are accepted.
    tls = Tls.model_validate(
        {**two_certificates(files), "min_version": 1.3, "client_auth": {"mode": False}}
    )
    assert (tls.min_version, tls.client_auth.mode) == ("1.3", "off")
    assert Tls.model_validate({**two_certificates(files), "alpn": ["http/1.1"]}).alpn == (
        "http/1.1",
    )


def test_shape_errors_name_their_field(files: dict[str, Path]) -> None:
    problems = problems_of(
        {
            **two_certificates(files),
            "min_version": "1.1",
            "alpn": ["spdy/3"],
            "client_auth": {"mode": "required", "forward_header": "bad header"},
        }
    )
    text = "\n".join(problems)
    assert "listeners[0].tls.min_version:" in text
    assert "listeners[0].tls.alpn[0]:" in text
    assert "listeners[0].tls.client_auth.ca: client_auth mode required needs a ca" in text
    assert "listeners[0].tls.client_auth.forward_header:" in text
    assert problems_of({"certificates": []}) == [
        "listeners[0].tls.certificates: give at least one certificate, or set acme: true"
        " (on a core or edge)"
    ]


def test_file_problems_name_the_field_and_the_file(files: dict[str, Path], tmp_path: Path):
    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_bytes(other_key_pem())
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    problems = problems_of(
        {
            "certificates": [
                {"cert": str(tmp_path / "missing.pem"), "key": str(files["a_key"])},
                {"cert": str(files["a"]), "key": str(wrong_key)},
                {"cert": str(not_pem), "key": str(not_pem)},
            ],
            "client_auth": {"mode": "optional", "ca": str(tmp_path)},
        }
    )
    assert problems == [
        f"listeners[0].tls.certificates[0].cert: cannot read {tmp_path}/missing.pem: "
        "No such file or directory",
        f"listeners[0].tls.certificates[1].key: {wrong_key} is not the key of the certificate "
        f"in {files['a']}",
        f"listeners[0].tls.certificates[2].cert: {not_pem} holds no PEM certificate "
        "(-----BEGIN CERTIFICATE-----)",
        f"listeners[0].tls.certificates[2].key: {not_pem} holds no PEM private key "
        "(-----BEGIN PRIVATE KEY-----)",
        f"listeners[0].tls.client_auth.ca: cannot read {tmp_path}: Is a directory",
    ]


# ---------------------------------------------------------------- certificate choice


def test_names_come_from_the_san_else_the_common_name(ca: TestCA) -> None:
    assert certificate_names(ca.issue("x", dns_names=("A.Test", "*.b.test")).certificate) == [
        "a.test",
        "*.b.test",
    ]
    assert certificate_names(ca.issue("only-cn.test", client=True).certificate) == ["only-cn.test"]


def test_sni_picks_exact_then_one_label_wildcard_then_the_first(files: dict[str, Path]):
    tls = Tls.model_validate(two_certificates(files))
    certificates = build_certificates(tls, "listeners[0].tls")
    first, wildcard = certificates.default, certificates.wildcard["b.test"]
    assert first is not wildcard
    assert certificates.context_for("a.test") is first
    assert certificates.context_for("WWW.A.TEST.") is first
    assert certificates.context_for("x.b.test") is wildcard
    # One label only: neither the bare domain nor a deeper name is covered by *.b.test.
    assert certificates.context_for("b.test") is first
    assert certificates.context_for("y.x.b.test") is first
    assert certificates.context_for("unknown.test") is first
    assert certificates.context_for(None) is first


def test_protocol_settings_on_every_context(files: dict[str, Path]) -> None:
    tls = Tls.model_validate(
        {
            **two_certificates(files),
            "min_version": "1.3",
            "client_auth": {"mode": "required", "ca": str(files["ca"])},
        }
    )
    listener = ListenerTls(tls, build_certificates(tls, "listeners[0].tls"))
    for context in (listener.context, *listener.certificates.exact.values()):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
        assert context.verify_mode is ssl.CERT_REQUIRED
    assert listener.context.sni_callback is not None


def test_renewal_is_seen_only_when_a_file_changes(files: dict[str, Path], ca: TestCA) -> None:
    tls = Tls.model_validate(two_certificates(files))
    listener = ListenerTls(tls, build_certificates(tls, "listeners[0].tls"))
    assert listener.renewed_certificates("listeners[0].tls") is None
    ca.issue("a2", dns_names=("a.test",)).write(files["a"].parent, "a")
    renewed = listener.renewed_certificates("listeners[0].tls")
    assert renewed is not None and renewed.fingerprint != listener.certificates.fingerprint


def test_a_renewal_with_a_mismatched_key_is_refused(files: dict[str, Path], ca: TestCA) -> None:
    tls = Tls.model_validate(two_certificates(files))
    listener = ListenerTls(tls, build_certificates(tls, "listeners[0].tls"))
    files["b_key"].write_bytes(other_key_pem())  # the key was replaced, not the certificate
    with pytest.raises(TlsSetupError) as caught:
        listener.renewed_certificates("listeners[0].tls")
    assert caught.value.problems == [
        f"listeners[0].tls.certificates[1].key: {files['b_key']} is not the key of the "
        f"certificate in {files['b']}"
    ]


# ---------------------------------------------------------------- client identity


class FakeSSLObject:
    """What peer_identity reads from an ssl object: the verified certificate, if any."""

    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False):
        if binary_form:
            return self.der
        return {"subject": ()} if self.der else {}


def test_identity_of_a_client_certificate(ca: TestCA) -> None:
    client = ca.issue(
        'cli"ent', dns_names=("client.test",), uris=("spiffe://test/client",), client=True
    )
    identity = peer_identity(FakeSSLObject(client.der))
    assert identity.subject == 'CN=cli\\"ent,O=Dispa Tests'  # RFC 4514 escapes the quote
    assert identity.sans == ("DNS:client.test", "URI:spiffe://test/client")
    assert identity.header_value == (
        b'Subject="CN=cli\\\\\\"ent,O=Dispa Tests";DNS="client.test";URI="spiffe://test/client"'
    )
    assert peer_identity(FakeSSLObject(None)) is None
    assert peer_identity(None) is None


def test_identity_header_replaces_any_client_copy() -> None:
    identity = ClientIdentity("CN=c", (), b'Subject="CN=c"')
    headers = [(b"Host", b"a"), (b"X-Client-Cert", b"forged"), (b"x-client-cert", b"again")]
    assert with_identity_header(headers, b"x-client-cert", identity) == [
        (b"Host", b"a"),
        (b"x-client-cert", b'Subject="CN=c"'),
    ]
    assert with_identity_header(headers, b"x-client-cert", None) == [(b"Host", b"a")]
