"""Deny routes cannot be walked around by spelling the path another way.

A gateway with a deny route (``path_prefix: /admin`` answered 403 by the gateway itself)
and a pass-through route to a recording upstream. Every spelling of ``/admin`` below is
either refused (400) or denied (403), and the upstream never sees it; legitimate paths
reach the upstream in their one normalised form (docs/life-of-a-request.md, "What the
upstream receives"). HTTP/1.1 absolute-form targets are routed by their authority and
forwarded in origin-form with that authority as Host (RFC 9112 3.2.2).
"""

from __future__ import annotations

import socket
import time

import pytest
from conftest import HOST, make_config
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ResponseReceived, StreamEnded, StreamReset
from harness import RecordingUpstream, read_until_closed


def _echo(head: bytes, body: bytes, connection: int, index: int) -> bytes:
    """200 with the request head as the body: the client sees what was forwarded."""
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(head), head)


@pytest.fixture(scope="module")
def deny_gateway(module_processes, tmp_path_factory):
    with RecordingUpstream(_echo) as upstream:
        config = make_config(
            [{"name": "app", "endpoints": [{"address": upstream.address}]}],
            [
                {
                    "name": "deny-admin",
                    "match": {"path_prefix": "/admin"},
                    "direct_response": {"status": 403, "body": "denied\n"},
                },
                {
                    "name": "internal",
                    "match": {"host": "internal.example", "path_prefix": "/"},
                    "direct_response": {"status": 200, "body": "internal only\n"},
                },
                {"name": "pass", "match": {"path_prefix": "/"}, "upstream": "app"},
            ],
        )
        gateway = module_processes.gateway(config, tmp_path_factory.mktemp("path-bypass"))
        yield gateway, upstream


def _request(port: int, target: bytes, host: bytes = b"t.test") -> tuple[int, bytes]:
    """One HTTP/1.1 GET on a fresh connection: (status, whole answer)."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
        )
        answer = read_until_closed(sock, timeout=5, idle=2)
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer[9:12]), answer


def _forwarded_heads(upstream: RecordingUpstream, before: int) -> list[bytes]:
    with upstream.lock:
        return upstream.requests[before:]


# Each is a way of writing /admin (or of reaching it through the upstream's own decoding).
ADMIN_SPELLINGS = [
    b"/admin",
    b"//admin",
    b"///admin",
    b"/./admin",
    b"/%61dmin",
    b"/%61%64%6d%69%6e",
    b"/%61%64%6D%69%6E/",
    b"/x/../admin",
    b"/x/./../admin",
    b"/%2e/admin",
    b"/%2E/admin",
    b"/.%2e/admin",
    b"/%2e%2e/admin",
    b"/%2E%2E/admin",
    b"/x/%2e%2e/admin",
    b"/x/.%2E/admin",
    b"/admin/../admin",
    b"/admin/.",
    b"/admin;x",
    b"/admin%00",
    b"/admin%2f",
    b"/%2Fadmin",
    b"/x%2F..%2Fadmin",
    b"/x%2f%2e%2e%2fadmin",
    b"/%5Cadmin",
    b"/x%5C..%5Cadmin",
    b"/\\admin",
    b"/x\\..\\admin",
    b"/x/..;/admin",
    b"/x/%2e%2e;/admin",
    b"/;/admin",
    b"/.;/admin",
    b"/admin#frag",
    b"/%2",
    b"/%zzadmin",
    b"http://t.test/admin",
    b"HTTP://t.test//admin",
    b"http://t.test/%61dmin",
    b"http://t.test/x/../admin",
    b"http://user@t.test/admin",
    b"ftp://t.test/admin",
    b"admin",
    b"*",
]


@pytest.mark.parametrize("target", ADMIN_SPELLINGS, ids=lambda t: t.decode("latin-1"))
def test_every_spelling_of_a_denied_path_is_refused_or_denied(deny_gateway, target):
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    status, answer = _request(gateway.port, target)
    assert status in (400, 403), answer
    assert _forwarded_heads(upstream, before) == [], f"{target!r} reached the upstream"


# A path the client writes, and the one form the upstream receives.
LEGITIMATE = [
    (b"/a/%7euser/./b//c", b"/a/~user/b/c"),
    (b"/caf%c3%a9", b"/caf%C3%A9"),
    (b"/x/y/../z?q=%2e%2e/admin&p=//x", b"/x/z?q=%2e%2e/admin&p=//x"),
    (b"/a|b^c", b"/a%7Cb%5Ec"),
    (b"/%252e/admin", b"/%252e/admin"),  # a literal "%2e" segment: never decoded twice
    (b"/ADMIN", b"/ADMIN"),  # paths are case-sensitive (RFC 3986 6.2.2.1)
    (b"/administrators/../public", b"/public"),
    (b"/.well-known/x", b"/.well-known/x"),
    (b"/a/...", b"/a/..."),
    (b"/files;v=2/doc", b"/files;v=2/doc"),
    (b"/%7E%41", b"/~A"),
    (b"http://t.test", b"/"),
    (b"http://t.test?x=1", b"/?x=1"),
    (b"http://T.test:8080/p/%7eq?y", b"/p/~q?y"),
]


@pytest.mark.parametrize(("target", "forwarded"), LEGITIMATE, ids=lambda t: t.decode("latin-1"))
def test_legitimate_paths_reach_the_upstream_in_their_normalised_form(
    deny_gateway, target, forwarded
):
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    status, answer = _request(gateway.port, target)
    assert status == 200, answer
    heads = _forwarded_heads(upstream, before)
    assert len(heads) == 1, heads
    assert heads[0].startswith(b"GET " + forwarded + b" HTTP/1.1\r\n"), heads[0]


def test_absolute_form_is_routed_by_its_authority_and_forwarded_in_origin_form(deny_gateway):
    gateway, upstream = deny_gateway
    # The authority says internal.example: its route answers, whatever Host says.
    status, answer = _request(gateway.port, b"http://internal.example/secret", b"t.test")
    assert status == 200 and answer.endswith(b"internal only\n"), answer
    # An authority routed to the upstream: origin-form, and Host is the authority, once.
    before = len(upstream.requests)
    status, answer = _request(gateway.port, b"http://Other.Example:8080/p?q=1", b"t.test")
    assert status == 200, answer
    (head,) = _forwarded_heads(upstream, before)
    assert head.startswith(b"GET /p?q=1 HTTP/1.1\r\n"), head
    hosts = [line for line in head.lower().split(b"\r\n") if line.startswith(b"host:")]
    assert hosts == [b"host: other.example:8080"], head


@pytest.mark.parametrize(
    "host",
    [b"internal.example", b"INTERNAL.example", b"internal.example:80", b"internal.example."],
)
def test_a_host_route_holds_however_the_host_is_spelled(deny_gateway, host):
    """The host a route names is the host whatever its case, port or trailing dot (an
    FQDN's root label): the upstream would take ``internal.example.`` for the same site."""
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    status, answer = _request(gateway.port, b"/secret", host)
    assert status == 200 and answer.endswith(b"internal only\n"), answer
    assert _forwarded_heads(upstream, before) == []


@pytest.mark.parametrize(
    "host",
    [
        b"user@internal.example",
        b"internal.example/x",
        b"internal.example, other.example",
        b"internal.example%2e",
        b"internal.example:80:80",
        b"internal example",
    ],
)
def test_a_host_that_is_not_a_host_is_refused(deny_gateway, host):
    """RFC 9110 7.2: Host is uri-host [":" port]. Anything else reads one way to the
    router and maybe another to the upstream: 400, never forwarded."""
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    status, answer = _request(gateway.port, b"/secret", host)
    assert status == 400, answer
    assert _forwarded_heads(upstream, before) == []


def test_a_repeated_head_is_normalised_every_time(deny_gateway):
    """The parser remembers heads it has read (h1_parser's table): the remembered meaning
    is the normalised one, on a keep-alive connection as on fresh ones."""
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    request = b"GET /%61dmin HTTP/1.1\r\nHost: t.test\r\n\r\n"
    with socket.create_connection((HOST, gateway.port), timeout=5) as sock:
        sock.settimeout(5)
        for _ in range(5):
            sock.sendall(request)
            answer = b""
            while b"denied\n" not in answer:
                data = sock.recv(65536)
                assert data, answer
                answer += data
            assert answer.startswith(b"HTTP/1.1 403 "), answer
    for _ in range(3):
        assert _request(gateway.port, b"/%61dmin")[0] == 403
    assert _forwarded_heads(upstream, before) == []


# ---------------------------------------------------------------- HTTP/2 clients


class _H2:
    """h2c with prior knowledge; header validation off so any :path can be sent."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        config = H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        self.h2 = H2Connection(config)
        self.authority = b"t.test"
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())

    def get(self, path: bytes, extra: tuple = ()) -> int | str:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", self.authority),
            *extra,
        ]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self.sock.sendall(self.h2.data_to_send())
        status: int | str = "no answer"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                return "closed"
            for event in self.h2.receive_data(data):
                if isinstance(event, ResponseReceived) and event.stream_id == stream_id:
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, StreamEnded) and event.stream_id == stream_id:
                    return status
                elif isinstance(event, StreamReset) and event.stream_id == stream_id:
                    return f"reset {event.error_code}"
            outgoing = self.h2.data_to_send()
            if outgoing:
                self.sock.sendall(outgoing)
        return status

    def close(self) -> None:
        self.sock.close()


H2_ADMIN_SPELLINGS = [
    b"/admin",
    b"//admin",
    b"/./admin",
    b"/%61dmin",
    b"/x/../admin",
    b"/%2e/admin",
    b"/%2E%2E/admin",
    b"/admin%2F",
    b"/admin%00",
    b"/x/..;/admin",
    b"/x\\..\\admin",
    b"/adm\x7fin",
    b"/adm in",
    b"/adm\xc3\xa9in",
    b"http://t.test/admin",
    b"admin",
    b"*",
]


@pytest.mark.parametrize("path", H2_ADMIN_SPELLINGS, ids=lambda t: t.decode("latin-1"))
def test_http2_paths_are_normalised_the_same_way(deny_gateway, path):
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    client = _H2(gateway.port)
    try:
        status = client.get(path)
    finally:
        client.close()
    assert status in (400, 403), status
    assert _forwarded_heads(upstream, before) == [], f"{path!r} reached the upstream"


def test_http2_legitimate_path_is_forwarded_normalised(deny_gateway):
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    client = _H2(gateway.port)
    try:
        assert client.get(b"/a/%7euser/./b//c?x=%2e") == 200
    finally:
        client.close()
    (head,) = _forwarded_heads(upstream, before)
    assert head.startswith(b"GET /a/~user/b/c?x=%2e HTTP/1.1\r\n"), head


@pytest.mark.parametrize("authority", [b"user@internal.example", b"internal.example/x", b""])
def test_http2_authority_that_is_not_a_host_is_refused(deny_gateway, authority):
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    client = _H2(gateway.port)
    try:
        client.authority = authority
        assert client.get(b"/public") == 400
    finally:
        client.close()
    assert _forwarded_heads(upstream, before) == []


def test_http2_authority_and_host_that_disagree_are_refused(deny_gateway):
    gateway, upstream = deny_gateway
    before = len(upstream.requests)
    client = _H2(gateway.port)
    try:
        assert client.get(b"/public", ((b"host", b"internal.example"),)) == 400
    finally:
        client.close()
    assert _forwarded_heads(upstream, before) == []
