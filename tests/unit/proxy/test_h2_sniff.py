"""One listener, two protocols: the first bytes (or ALPN) pick HTTP/1.1 or HTTP/2."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dispa.proxy import protocol_sniff
from dispa.proxy.exchange import NO_DEADLINE
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.http2.server import H2ServerConnection
from dispa.proxy.protocol_sniff import PREFACE, ProtocolSniffer, sniff


@pytest.mark.parametrize(
    ("first_bytes", "expected"),
    [
        (b"GET / HTTP/1.1\r\n", H1ServerConnection),
        (b"P", None),  # PRI, POST, PUT or PATCH: not yet known
        (b"PO", H1ServerConnection),
        (b"PRI * HTTP/2.0\r\n", None),
        (PREFACE, H2ServerConnection),
        (PREFACE + b"\x00\x00\x00\x04", H2ServerConnection),
        (b"PRI * HTTP/1.1\r\n", H1ServerConnection),
        (b"PRI / HTTP/2.0\r\n", H1ServerConnection),  # not the preface's target
        (b"PRI * HTTP/3.0\r\n", H1ServerConnection),  # HTTP/1.1 answers it 505
        (b"PRI * HTTP/2", None),
        # A mangled preface: the bytes claim HTTP/2, which answers GOAWAY(PROTOCOL_ERROR).
        (b"PRI * HTTP/2.1\r\n", H2ServerConnection),
        (b"PRI * HTTP/2.0\r\nHost: a\r\n\r\n", H2ServerConnection),
        (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", H2ServerConnection),
        (PREFACE[:-1] + b"\r", H2ServerConnection),
    ],
)
def test_sniff(first_bytes, expected):
    assert sniff(first_bytes) is expected


class Recorder:
    """Stands in for a protocol class: records what it was handed."""

    made: list[Recorder]

    def __init__(self, gateway, listener) -> None:
        self.listener = listener
        self.transport = None
        self.data = b""
        self.made.append(self)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data


class FakeTransport:
    def __init__(self, alpn: str | None = None, tls: bool = False) -> None:
        self.protocol = None
        self.closed = False
        self.ssl_object = SimpleNamespace(selected_alpn_protocol=lambda: alpn) if tls else None

    def get_extra_info(self, name, default=None):
        return self.ssl_object if name == "ssl_object" else default

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def made(monkeypatch):
    h1 = type("H1", (Recorder,), {"made": []})
    h2 = type("H2", (Recorder,), {"made": []})
    monkeypatch.setattr(protocol_sniff, "H1ServerConnection", h1)
    monkeypatch.setattr(protocol_sniff, "h2_connection_class", lambda: h2)
    return SimpleNamespace(h1=h1.made, h2=h2.made)


def sniffer() -> tuple[ProtocolSniffer, SimpleNamespace]:
    gateway = SimpleNamespace(connections=set(), now=100.0)
    listener = SimpleNamespace(name="public", limits=SimpleNamespace(header_timeout=10.0))
    return ProtocolSniffer(gateway, listener), gateway


def test_a_preface_split_across_reads_goes_to_http2_with_every_byte(made):
    protocol, gateway = sniffer()
    transport = FakeTransport()
    protocol.connection_made(transport)
    assert protocol in gateway.connections  # a silent client is subject to timeouts
    assert protocol.deadline == 110.0
    frames = PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    for piece in (frames[:3], frames[3:20], frames[20:]):
        protocol.data_received(piece)
    (h2,) = made.h2
    assert not made.h1
    assert transport.protocol is h2 and h2.transport is transport
    assert h2.data == frames
    assert protocol not in gateway.connections


def test_http1_is_handed_over_at_the_first_byte_that_differs(made):
    protocol, _ = sniffer()
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"P")
    assert not made.h1 and not made.h2
    protocol.data_received(b"OST / HTTP/1.1\r\n")
    (h1,) = made.h1
    assert h1.data == b"POST / HTTP/1.1\r\n"
    assert transport.protocol is h1


def test_a_mangled_preface_split_across_reads_goes_to_http2_with_every_byte(made):
    protocol, gateway = sniffer()
    transport = FakeTransport()
    protocol.connection_made(transport)
    pieces = (b"PRI * HT", b"TP/2.0\r\n\r\n", b"XX\r\n\r\n")
    protocol.data_received(pieces[0])
    protocol.data_received(pieces[1])
    assert not made.h1 and not made.h2  # still a prefix of the preface
    protocol.data_received(pieces[2])
    (h2,) = made.h2
    assert not made.h1
    assert h2.data == b"".join(pieces)  # its engine sees the bad bytes and says so
    assert protocol not in gateway.connections


@pytest.mark.parametrize(("alpn", "which"), [("h2", "h2"), ("http/1.1", "h1"), (None, "h1")])
def test_over_tls_alpn_decides_before_any_byte(made, alpn, which):
    protocol, gateway = sniffer()
    transport = FakeTransport(alpn, tls=True)
    protocol.connection_made(transport)
    (chosen,) = getattr(made, which)
    assert transport.protocol is chosen and chosen.transport is transport
    assert protocol not in gateway.connections


def test_a_silent_client_times_out_and_a_drain_closes_it(made):
    protocol, gateway = sniffer()
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.check_deadlines(105.0)
    assert not transport.closed
    protocol.check_deadlines(110.5)
    assert transport.closed and protocol.deadline == NO_DEADLINE
    protocol.connection_lost(None)
    assert protocol not in gateway.connections

    other, _ = sniffer()
    transport = FakeTransport()
    other.connection_made(transport)
    other.close_if_idle()
    assert transport.closed
