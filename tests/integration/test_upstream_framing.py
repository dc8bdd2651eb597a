"""How a real gateway frames what an HTTP/1.1 upstream sends: a body longer than its
Content-Length is cut to it (the client gets the declared bytes and a 200, the upstream
connection is closed, never reused, and the log names upstream and endpoint), and a body
that the upstream's close delimits is a complete response, forwarded whole (chunked to an
HTTP/1.1 client, ended by the close for an HTTP/1.0 one). Upstreams are raw scripted
sockets (scripted_upstream.py), so each write and pause is the test's."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import curl, make_config, raw_connection, read_response, wait_until
from scripted_upstream import Conversation, ScriptedUpstream

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
FORGED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _gateway(processes, tmp_path, upstream: ScriptedUpstream):
    config = make_config(
        [{"name": "framing", "endpoints": [{"address": upstream.address}]}],
        [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "framing"}],
    )
    return processes.gateway(config, tmp_path)


def _get(port: int, path: str, *, version: bytes = b"1.1", method: bytes = b"GET"):
    with raw_connection(port) as (sock, stream):
        sock.sendall(
            method + b" " + path.encode() + b" HTTP/" + version + b"\r\nHost: f.test\r\n\r\n"
        )
        return read_response(stream, head_request=method == b"HEAD")


# ------------------------------------------------------------------ longer than its length

WRITES = {
    "one-write": [HEAD + b"helloworld"],
    "two-writes": [HEAD + b"hello", b"world"],
    "split-body": [HEAD + b"hel", b"loworld"],
    "response-after-it": [HEAD + b"hello" + FORGED],
    "surplus-then-response": [HEAD + b"helloworld" + FORGED],
}


@pytest.mark.parametrize("writes", WRITES.values(), ids=WRITES.keys())
def test_a_body_longer_than_its_content_length_is_cut_to_it(processes, tmp_path, writes):
    upstream_closed = threading.Event()

    def script(conversation: Conversation) -> None:
        while conversation.read_request() is not None:
            if conversation.number > 0:
                conversation.send(PLAIN)
                continue
            for number, data in enumerate(writes):
                if number:
                    time.sleep(0.2)  # the gateway has read what came before
                conversation.send(data)
            if conversation.closed_by_peer(timeout=5.0):
                upstream_closed.set()
            return

    with ScriptedUpstream(script) as upstream:
        gateway = _gateway(processes, tmp_path, upstream)
        first = _get(gateway.port, "/first")
        assert (first.status, first.body) == (200, b"hello")
        assert first.header("content-length") == "5"
        assert upstream_closed.wait(5.0), "the gateway kept the out-of-step connection open"
        second = _get(gateway.port, "/second")
        assert (second.status, second.body) == (200, b"ok")  # never the forged response
        assert [number for number, _ in upstream.requests] == [0, 1]  # a new connection
        assert not upstream.errors, upstream.errors
    wait_until(
        lambda: "sent bytes after the end of its response" in gateway.stderr(),
        timeout=5.0,
        what="the warning",
    )
    line = next(
        line for line in gateway.stderr().splitlines() if "after the end of its response" in line
    )
    assert f"endpoint {upstream.address} of upstream framing" in line, line


def test_a_body_to_head_is_dropped_and_the_connection_not_reused(processes, tmp_path):
    def script(conversation: Conversation) -> None:
        while (request := conversation.read_request()) is not None:
            if request[0].startswith(b"HEAD"):
                conversation.send(HEAD + b"hello")
            else:
                conversation.send(PLAIN)

    with ScriptedUpstream(script) as upstream:
        gateway = _gateway(processes, tmp_path, upstream)
        head = _get(gateway.port, "/h", method=b"HEAD")
        assert (head.status, head.header("content-length")) == (200, "5")
        plain = _get(gateway.port, "/after")
        assert (plain.status, plain.body) == (200, b"ok")
        assert [number for number, _ in upstream.requests] == [0, 1]


# ------------------------------------------------------------------ delimited by the close


def _close_delimited(version: bytes):
    def script(conversation: Conversation) -> None:
        if conversation.read_request() is None:
            return
        conversation.send(b"HTTP/" + version + b" 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for piece in (b"first ", b"second ", b"third"):
            time.sleep(0.05)
            conversation.send(piece)
        # Returning closes the connection: that ends the body.

    return script


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_a_close_delimited_body_is_forwarded_whole(processes, tmp_path, version):
    with ScriptedUpstream(_close_delimited(version)) as upstream:
        gateway = _gateway(processes, tmp_path, upstream)
        result = curl("-sS", "-D", "-", gateway.url("/stream"))
        assert result.returncode == 0, result.stderr
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower()
        assert body == b"first second third"
        old = _get(gateway.port, "/stream", version=b"1.0")
        assert (old.status, old.body) == (200, b"first second third")
        assert old.header("transfer-encoding") is None
        assert not upstream.errors, upstream.errors
