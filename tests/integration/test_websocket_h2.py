"""WebSocket over HTTP/2 (RFC 8441): an extended CONNECT through Dispa to a WebSocket
upstream that speaks HTTP/1.1.

No common Python library is an RFC 8441 client, so the client (websocket_h2_client.py) is
the h2 library (a real HTTP/2 implementation) over a real socket, with a tiny WebSocket
frame encoder. The upstream is the real aiohttp echo server of test_websocket.py, in its
own process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from conftest import HOST, Gateway, Processes, Upstream, http_get, make_config, wait_until
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from test_websocket import access_log, echo_upstream, websocket_config
from websocket_h2_client import (
    BINARY,
    CLOSE,
    CONTINUATION,
    MIB,
    PING,
    PONG,
    TEXT,
    WAIT,
    WebSocketOverH2,
    client_frame,
    close_payload,
)

from tests.tls_certs import TestCA

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def echo(module_processes: Processes) -> Upstream:
    return echo_upstream(module_processes, "ws-h2-echo")


@pytest.fixture(scope="module")
def gateway(
    module_processes: Processes, tmp_path_factory: pytest.TempPathFactory, echo: Upstream
) -> Gateway:
    workdir = tmp_path_factory.mktemp("websocket-h2")
    log = {"enabled": True, "path": str(workdir / "access.log"), "flush_interval": "100ms"}
    return module_processes.gateway(websocket_config(echo, access_log=log), workdir)


@pytest.fixture
def client(gateway: Gateway):
    client = WebSocketOverH2(gateway.port)
    yield client
    client.close()


def tunnel_reason(gateway: Gateway, request_id: str) -> str:
    """The reason the access log gives for the tunnel opened with that request id."""
    log_path = gateway.workdir / "access.log"

    def record() -> dict | None:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        for line in lines:
            found = json.loads(line)
            if found["request_id"] == request_id:
                return found
        return None

    found = wait_until(record, timeout=WAIT, what=f"{request_id} in the access log")
    assert found["status"] == 101, found
    return found["reason"]


def closes_seen(echo: Upstream) -> list[dict]:
    status, body = http_get(echo.url("/closes"), timeout=5.0)
    assert status == 200
    return json.loads(body)


# ---------------------------------------------------------------- the handshake and echo


def test_settings_advertise_extended_connect(client: WebSocketOverH2) -> None:
    client.read_until(lambda: client.server_settings)
    assert client.server_settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1


def test_handshake_translated_and_messages_echoed(client: WebSocketOverH2) -> None:
    assert client.open() == 200  # the upstream's 101, as RFC 8441 answers it
    headers = client.headers
    assert headers[b"sec-websocket-protocol"] == b"echo"
    assert b"dispa" in headers[b"via"]
    assert headers.get(b"x-request-id")
    for dropped in (b"sec-websocket-accept", b"upgrade", b"connection", b"content-length"):
        assert dropped not in headers
    for i in range(20):
        client.send_frame(TEXT, f"hello {i}".encode())
        assert client.receive_message() == (TEXT, f"hello {i}".encode())
    blob = os.urandom(70_000)
    client.send_frame(BINARY, blob)
    assert client.receive_message() == (BINARY, blob)
    assert not client.ended and client.reset_code is None


def test_large_message_through_both_windows(client: WebSocketOverH2) -> None:
    """8 MiB each way through 64 KiB client windows and 256 KiB gateway windows."""
    blob = os.urandom(8 * MIB)
    assert client.open() == 200
    client.send_frame(BINARY, blob)
    opcode, echoed = client.receive_message()
    assert opcode == BINARY
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(blob).digest()


def test_gateway_waits_for_the_clients_window(client: WebSocketOverH2) -> None:
    """A client that stops acknowledging gets no more than its window: the gateway holds
    the rest (and stops reading its upstream) instead of overrunning it."""
    assert client.open() == 200
    client.acknowledge = False
    blob = os.urandom(1 * MIB)
    client.send_frame(BINARY, blob)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        client.read_some(deadline)
    window = 65535  # the client's default stream and connection windows
    assert len(client.inbound) <= window
    assert len(client.inbound) > 0
    client.acknowledge = True
    client.give_window()
    client.flush()
    assert client.receive_message() == (BINARY, blob)


def test_fragmented_message_with_a_ping_between(client: WebSocketOverH2) -> None:
    assert client.open() == 200
    client.send_frame(TEXT, b"frag", fin=False)
    client.send_frame(CONTINUATION, b"mented ", fin=False)
    client.send_frame(PING, b"mid-ping")  # control frames may interleave
    client.send_frame(CONTINUATION, b"message", fin=True)
    messages = [client.receive_message(), client.receive_message()]
    assert sorted(messages) == [(TEXT, b"fragmented message"), (PONG, b"mid-ping")]


def test_ping_answered_with_pong(client: WebSocketOverH2) -> None:
    assert client.open() == 200
    client.send_frame(PING, b"are you there")
    assert client.receive_message() == (PONG, b"are you there")


def test_bytes_sent_with_the_handshake_wait_for_the_tunnel(client: WebSocketOverH2) -> None:
    """DATA frames right behind the extended CONNECT, before its answer, are held and
    relayed once the upstream has accepted."""
    client.read_until(lambda: client.server_settings)
    client.stream_id = client.h2.get_next_available_stream_id()
    client.h2.send_headers(
        client.stream_id,
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":path", b"/ws"),
            (b":authority", b"ws.test"),
            (b"sec-websocket-version", b"13"),
        ],
    )
    client.send_frame(TEXT, b"early bird")
    client.read_until(lambda: client.status)
    assert client.status == 200
    assert client.receive_message() == (TEXT, b"early bird")


# ---------------------------------------------------------------- refusals


def test_plain_endpoint_answer_is_not_taken_for_a_tunnel(client: WebSocketOverH2) -> None:
    """/plain answers 200 without upgrading: to an HTTP/2 client that 2xx would mean an
    open WebSocket, so the gateway says 502."""
    assert client.open("/plain") == 502
    client.read_until(lambda: client.ended or client.reset_code is not None)
    assert b"plain answer" not in client.inbound


def test_unknown_protocol_and_plain_connect_refused(client: WebSocketOverH2) -> None:
    client.read_until(lambda: client.server_settings)
    tunnel = client.h2.get_next_available_stream_id()
    client.h2.send_headers(
        tunnel,
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"not-websocket"),
            (b":scheme", b"http"),
            (b":path", b"/ws"),
            (b":authority", b"ws.test"),
        ],
    )
    client.stream_id = tunnel
    client.flush()
    client.read_until(lambda: client.status)
    assert client.status == 501


# ---------------------------------------------------------------- closing


def test_close_from_the_client_reaches_the_upstream(
    gateway: Gateway, client: WebSocketOverH2, echo: Upstream
) -> None:
    assert client.open(request_id="h2-client-closes") == 200
    client.send_frame(TEXT, b"before close")
    assert client.receive_message() == (TEXT, b"before close")
    # The Close frame and END_STREAM together: the upstream is half-closed, and its own
    # Close frame still comes back before the stream ends.
    client.send(client_frame(CLOSE, close_payload(4002, b"client leaves")), end_stream=True)
    opcode, payload = client.receive_message()
    assert opcode == CLOSE and len(payload) >= 2  # the upstream's own close code
    client.read_until(lambda: client.ended or client.reset_code is not None)
    assert client.ended and client.reset_code is None
    wait_until(
        lambda: {"code": 4002, "path": "/ws"} in closes_seen(echo),
        timeout=WAIT,
        what="the upstream to see close code 4002",
    )
    # The client sent the first Close frame: its close, though the upstream hung up first.
    assert tunnel_reason(gateway, "h2-client-closes") == "client_closed"


def test_close_from_the_upstream_reaches_the_client(
    gateway: Gateway, client: WebSocketOverH2
) -> None:
    assert client.open(request_id="h2-upstream-closes") == 200
    client.send_frame(TEXT, b"close:4001:going away now")
    opcode, payload = client.receive_message()
    assert opcode == CLOSE
    assert payload == close_payload(4001, b"going away now")
    client.send_frame(CLOSE, close_payload(4001))  # the close handshake's answer
    # The upstream hung up after its Close frame: a clean end of the stream, not a reset.
    client.read_until(lambda: client.ended or client.reset_code is not None)
    assert client.ended
    assert client.reset_code in (None, ErrorCodes.NO_ERROR)
    assert tunnel_reason(gateway, "h2-upstream-closes") == "upstream_closed"


def test_client_reset_closes_the_upstream_side(
    gateway: Gateway, client: WebSocketOverH2, echo: Upstream
) -> None:
    assert client.open("/ws?reset", request_id="h2-client-resets") == 200
    client.send_frame(TEXT, b"then reset")
    assert client.receive_message() == (TEXT, b"then reset")
    client.h2.reset_stream(client.stream_id, ErrorCodes.CANCEL)
    client.flush()
    # aiohttp records a connection closed without a Close frame as 1006 (abnormal).
    wait_until(
        lambda: any(c["code"] == 1006 and c["path"] == "/ws" for c in closes_seen(echo)),
        timeout=WAIT,
        what="the upstream to see its connection closed",
    )
    # RST_STREAM without a Close frame: the client went away mid-session.
    assert tunnel_reason(gateway, "h2-client-resets") == "client_disconnected"


def test_idle_tunnel_is_ended(gateway: Gateway, client: WebSocketOverH2) -> None:
    # tunnel_idle: 1s on that route's upstream
    assert client.open("/idle/ws", request_id="h2-idles") == 200
    client.send_frame(TEXT, b"then silence")
    assert client.receive_message() == (TEXT, b"then silence")
    started = time.monotonic()
    client.read_until(lambda: client.ended or client.reset_code is not None)
    assert 0.5 < time.monotonic() - started < 5.0
    # The connection stays up for other streams.
    assert not client.closed
    assert tunnel_reason(gateway, "h2-idles") == "tunnel_idle_timeout"


def test_tunnel_logged_as_101(gateway: Gateway, client: WebSocketOverH2) -> None:
    assert client.open("/ws?logged") == 200
    client.send_frame(TEXT, b"count me")
    assert client.receive_message() == (TEXT, b"count me")
    client.send(client_frame(CLOSE, close_payload(1000)), end_stream=True)
    client.read_until(lambda: client.ended or client.reset_code is not None)
    log_path = gateway.workdir / "access.log"

    def tunnel_record() -> dict | None:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        for line in lines:
            record = json.loads(line)
            if record["path"] == "/ws" and record["status"] == 101 and record["bytes_in"] > 8:
                return record
        return None

    record = wait_until(tunnel_record, timeout=WAIT, what="the tunnel in the access log")
    assert record["method"] == "GET" and record["bytes_out"] > 0


# ---------------------------------------------------------------- failures and shutdown


def test_upstream_death_resets_the_stream(processes: Processes, tmp_path: Path) -> None:
    echo = echo_upstream(processes, "ws-h2-doomed")
    workdir = tmp_path / "gw"
    gateway = processes.gateway(websocket_config(echo, access_log=access_log(workdir)), workdir)
    client = WebSocketOverH2(gateway.port)
    try:
        assert client.open(request_id="h2-killed") == 200
        client.send_frame(TEXT, b"alive")
        assert client.receive_message() == (TEXT, b"alive")
        os.kill(echo.process.pid, signal.SIGKILL)
        client.read_until(lambda: client.reset_code is not None or client.ended)
        assert client.reset_code == ErrorCodes.CONNECT_ERROR  # no Close frame: it died
        assert not client.closed  # only the stream, not the connection
    finally:
        client.close()
    status, _ = http_get(gateway.url("/plain"), timeout=5.0)
    assert status == 502
    assert tunnel_reason(gateway, "h2-killed") == "upstream_reset"


def test_drain_sends_goaway_then_ends_tunnels(processes: Processes, tmp_path: Path) -> None:
    echo = echo_upstream(processes, "ws-h2-drain")
    workdir = tmp_path / "gw"
    config = websocket_config(echo, access_log=access_log(workdir))
    config["drain_timeout"] = "1s"
    gateway = processes.gateway(config, workdir)
    client = WebSocketOverH2(gateway.port)
    try:
        assert client.open(request_id="h2-drained") == 200
        client.send_frame(TEXT, b"draining soon")
        assert client.receive_message() == (TEXT, b"draining soon")
        started = time.monotonic()
        gateway.process.signal(signal.SIGTERM)
        client.read_until(lambda: client.goaway)
        # The tunnel goes on through the drain ...
        client.send_frame(TEXT, b"still open")
        assert client.receive_message() == (TEXT, b"still open")
        # ... until its timeout closes the connection.
        client.read_until(lambda: client.closed, timeout=WAIT)
        gateway.process.wait(WAIT)
        assert time.monotonic() - started < 8.0
    finally:
        client.close()
    assert tunnel_reason(gateway, "h2-drained") == "shutting_down"


def test_h2_config_without_websocket_routes_still_answers(
    processes: Processes, tmp_path: Path, echo: Upstream
) -> None:
    """A route with no upstream answers the extended CONNECT itself, like a GET."""
    config = make_config(
        upstreams=[{"name": "ws", "endpoints": [{"address": echo.address}]}],
        routes=[{"match": {"path_prefix": "/ws"}, "upstream": "ws"}],
    )
    gateway = processes.gateway(config, tmp_path / "gw")
    client = WebSocketOverH2(gateway.port)
    try:
        assert client.open("/elsewhere") == 404
        client.read_until(lambda: client.ended or client.reset_code is not None)
    finally:
        client.close()


def test_upstream_answering_another_key_is_a_502(processes: Processes, tmp_path: Path) -> None:
    """The client cannot check Sec-WebSocket-Accept over HTTP/2 (RFC 8441 5): the gateway,
    which made the key, does, and an upstream answering another key opens no tunnel."""
    listener = socket.create_server((HOST, 0))
    port = listener.getsockname()[1]

    def answer_wrongly() -> None:
        with listener:
            listener.settimeout(WAIT)
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(WAIT)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(4096)
                handshake.append(head)
                connection.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHlvdXIga2V5\r\n\r\n"
                )
                connection.recv(4096)  # until the gateway hangs up

    handshake: list[bytes] = []
    thread = threading.Thread(target=answer_wrongly, daemon=True)
    thread.start()
    config = make_config(
        upstreams=[{"name": "ws", "endpoints": [{"address": f"{HOST}:{port}"}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "ws"}],
    )
    gateway = processes.gateway(config, tmp_path / "gw")
    client = WebSocketOverH2(gateway.port)
    try:
        assert client.open(protocols=None) == 502
        client.read_until(lambda: client.ended or client.reset_code is not None)
    finally:
        client.close()
    thread.join(WAIT)
    head = handshake[0].lower()
    # What the upstream was asked: an HTTP/1.1 upgrade, with a key the gateway made.
    assert head.startswith(b"get /ws http/1.1\r\n")
    assert b"\r\nupgrade: websocket\r\n" in head and b"\r\nconnection: upgrade\r\n" in head
    assert b"\r\nsec-websocket-key: " in head and b"\r\nsec-websocket-version: 13\r\n" in head
    assert b"\r\nhost: ws.test\r\n" in head


def test_websocket_over_h2_on_a_tls_listener(
    processes: Processes, tmp_path: Path, echo: Upstream
) -> None:
    """The same extended CONNECT over HTTP/2 chosen by ALPN on a TLS listener."""
    ca = TestCA()
    cert, key = ca.issue("ws.test", dns_names=("ws.test",)).write(tmp_path / "pki", "ws")
    ca_path = ca.write(tmp_path / "pki")
    tls = {"certificates": [{"cert": str(cert), "key": str(key)}], "alpn": ["h2", "http/1.1"]}
    config = make_config(
        upstreams=[{"name": "ws", "endpoints": [{"address": echo.address}]}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "ws"}],
        listeners=[{"name": "secure", "tls": tls}],
    )
    gateway = processes.gateway(config, tmp_path / "gw")
    client = WebSocketOverH2(
        gateway.port, ssl.create_default_context(cafile=str(ca_path)), server_name="ws.test"
    )
    try:
        assert client.open(scheme=b"https") == 200
        client.send_frame(BINARY, b"over tls")
        assert client.receive_message() == (BINARY, b"over tls")
        client.send(client_frame(CLOSE, close_payload(1000)), end_stream=True)
        assert client.receive_message()[0] == CLOSE
        client.read_until(lambda: client.ended or client.reset_code is not None)
        assert client.ended and client.reset_code is None
    finally:
        client.close()
