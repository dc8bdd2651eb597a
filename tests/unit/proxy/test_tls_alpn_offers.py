"""The ClientHello's ALPN offer (dispa/proxy/tls_alpn.py): parsed from real ClientHellos
made by Python's ssl in memory, never raising on bytes a client chose, noted on the
server's SSLObject only when the listener refuses every protocol offered, and logged at
most once a minute per listener."""

from __future__ import annotations

import logging
import ssl
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispa.proxy import tls_alpn
from dispa.proxy.tls_alpn import (
    offered_alpn,
    shown_protocols,
    warn_if_alpn_refused,
    watch_client_hellos,
)
from tests.tls_certs import TestCA


def client_hello_record(alpn: list[str]) -> bytes:
    """The first bytes a TLS client sends (one record holding its ClientHello)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="a.test")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def client_hello(alpn: list[str]) -> bytes:
    record = client_hello_record(alpn)
    assert record[0] == 22  # a handshake record, its message after the 5-byte header
    return record[5:]


def test_offers_are_read_in_the_clients_order() -> None:
    assert offered_alpn(client_hello(["h2", "http/1.1"])) == (b"h2", b"http/1.1")
    assert offered_alpn(client_hello(["h3"])) == (b"h3",)


def test_no_alpn_extension_is_no_offer() -> None:
    assert offered_alpn(client_hello([])) == ()


def test_not_a_client_hello_is_no_offer() -> None:
    message = client_hello(["h2"])
    assert offered_alpn(b"\x02" + message[1:]) == ()  # a ServerHello's type
    assert offered_alpn(b"") == ()


def test_every_truncation_is_read_without_raising() -> None:
    message = client_hello(["h2", "http/1.1"])
    for size in range(len(message)):
        assert isinstance(offered_alpn(message[:size]), tuple)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=400))
def test_hostile_bytes_never_raise(noise: bytes, cut: int) -> None:
    # Random bytes, and a real ClientHello with random bytes over its tail.
    assert isinstance(offered_alpn(noise), tuple)
    message = bytearray(client_hello(["h2"]))
    cut = min(cut, len(message))
    message[cut : cut + len(noise)] = noise[: len(message) - cut]
    assert isinstance(offered_alpn(bytes(message)), tuple)


def test_log_form_is_escaped_and_capped() -> None:
    assert shown_protocols((b"h2", b"http/1.1")) == "[h2, http/1.1]"
    assert shown_protocols((b"evil\nline", b"\xff")) == "[evil\\nline, \\xff]"
    many = tuple(b"p%d" % index for index in range(20))
    assert shown_protocols(many) == "[p0, p1, p2, p3, p4, p5, p6, p7, ... 12 more]"
    assert len(shown_protocols((b"x" * 255,))) == len("[]") + 32


# ---------------------------------------------------------------- on a real handshake


@pytest.fixture(scope="module")
def certificate_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    cert, key = (
        TestCA()
        .issue("a.test", dns_names=("a.test",))
        .write(tmp_path_factory.mktemp("alpn-unit"), "a")
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def server_side(accepted: tuple[str, ...], certificate_context, offered: list[str]):
    """The server's SSLObject after reading a client's ClientHello: a listener's context
    (watching, no certificate) whose SNI callback moves it to the certificate's, as
    ListenerTls does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(list(accepted))
    certificate_context.set_alpn_protocols(list(accepted))

    def pick(ssl_object, server_name, initial_context) -> None:
        ssl_object.context = certificate_context

    context.sni_callback = pick
    watch_client_hellos(context, accepted)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = context.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(client_hello_record(offered))
    with pytest.raises(ssl.SSLWantReadError):
        server.do_handshake()
    return server


def test_a_refused_offer_is_noted_on_the_connection(certificate_context) -> None:
    server = server_side(("h2", "http/1.1"), certificate_context, ["h3", "spdy/3"])
    assert server.dispa_refused_alpn == (b"h3", b"spdy/3")


@pytest.mark.parametrize("offered", [["h2"], ["h3", "http/1.1"], []])
def test_an_offer_with_one_accepted_protocol_or_none_is_not(certificate_context, offered):
    server = server_side(("h2", "http/1.1"), certificate_context, offered)
    assert not hasattr(server, "dispa_refused_alpn")


def test_grpc_offer_to_an_http11_listener_is_noted(certificate_context) -> None:
    server = server_side(("http/1.1",), certificate_context, ["h2"])
    assert server.dispa_refused_alpn == (b"h2",)


# ---------------------------------------------------------------- the log line


def listener(name: str = "public", alpn=("h2", "http/1.1")):
    return SimpleNamespace(name=name, tls=SimpleNamespace(alpn=alpn))


def transport(peer=("198.51.100.7", 40000)):
    return SimpleNamespace(get_extra_info=lambda key: peer if key == "peername" else None)


def refused(*names: bytes):
    return SimpleNamespace(dispa_refused_alpn=names)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(tls_alpn.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(tls_alpn, "_last_warning", {})
    return now


def test_one_line_a_minute_per_listener(clock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="dispa.tls")
    warn_if_alpn_refused(refused(b"h3"), transport(), listener())
    warn_if_alpn_refused(refused(b"h3"), transport(), listener())
    clock[0] += 59
    warn_if_alpn_refused(refused(b"h3"), transport(), listener())
    warn_if_alpn_refused(refused(b"h2"), transport(), listener("grpc", ("http/1.1",)))
    clock[0] += 1
    warn_if_alpn_refused(refused(b"h3"), transport(("198.51.100.8", 1)), listener())
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("listener public: TLS client 198.51.100.7:40000 offered only")
    assert "(offered [h3], listeners[].tls.alpn is [h2, http/1.1])" in lines[0]
    assert lines[1].startswith("listener grpc: TLS client 198.51.100.7:40000")
    assert "(offered [h2], listeners[].tls.alpn is [http/1.1])" in lines[1]
    assert "198.51.100.8:1" in lines[2]


def test_a_connection_without_a_refused_offer_is_not_logged(clock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="dispa.tls")
    warn_if_alpn_refused(SimpleNamespace(), transport(), listener())
    assert caplog.records == []
