"""What the edge cache stores of responses framed in unusual ways, end to end: a real core,
a real edge and a raw scripted origin (scripted_upstream.py) that frames each answer as a
test wants.

- A body delimited by the origin's close (no Content-Length, no chunked coding) is a
  complete response (RFC 9112 6.3 item 8): stored, and the next GET is a hit with the
  same body.
- A body longer than its Content-Length: the declared bytes are forwarded and stored.
- Interim (1xx) responses reach the client that caused the fetch and are never stored: a
  hit has no 103 before it and none of the 103's fields.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.conftest import Cluster
from scripted_upstream import Conversation, ScriptedUpstream

from .conftest import EdgeProcess

CACHEABLE = b"Cache-Control: max-age=60\r\nContent-Type: text/plain\r\n"


class Origin:
    """Answers by path, counting the requests each path got."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, conversation: Conversation) -> None:
        while (request := conversation.read_request()) is not None:
            path = request[0].split(b" ")[1].decode()
            with self.lock:
                self.counts[path] += 1
                number = self.counts[path]
            if path.startswith("/close/"):
                version = b"1.0" if path.endswith("/1.0") else b"1.1"
                conversation.send(b"HTTP/" + version + b" 200 OK\r\n" + CACHEABLE + b"\r\n")
                conversation.send(b"delimited by the close #%d" % number)
                return  # the close ends the body
            if path == "/longer":
                conversation.send(
                    b"HTTP/1.1 200 OK\r\n" + CACHEABLE + b"Content-Length: 5\r\n\r\nhelloworld"
                )
                return  # the gateway drops this connection anyway
            if path == "/hints":
                conversation.send(
                    b"HTTP/1.1 103 Early Hints\r\nLink: </hint.css>; rel=preload\r\n\r\n"
                )
                body = b"hinted #%d" % number
                conversation.send(
                    b"HTTP/1.1 200 OK\r\n"
                    + CACHEABLE
                    + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                continue
            conversation.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Origin, EdgeProcess]]:
    workdir: Path = tmp_path_factory.mktemp("cache-framing")
    cluster = Cluster(workdir / "cluster", count=1)  # one core: enough to feed an edge
    origin = Origin()
    edge = None
    with ScriptedUpstream(origin) as upstream:
        try:
            cluster.start()
            reply = cluster.leader().put_config(
                {
                    "upstreams": [
                        {
                            "name": "origin",
                            "endpoints": [{"address": upstream.address}],
                            "retry": {"attempts": 1},
                        }
                    ],
                    "routes": [
                        {
                            "name": "cached",
                            "match": {"path_prefix": "/"},
                            "upstream": "origin",
                            "cache": True,
                        }
                    ],
                    "access_log": {"enabled": False},
                }
            )
            assert reply.status == 200, reply
            cores = [core.admin_address for core in cluster.cores]
            edge = EdgeProcess("edge-framing", "eu", workdir / "edge-framing", cores)
            edge.start()
            edge.wait_revision(reply.body["revision"])
            yield origin, edge
            assert not upstream.errors, upstream.errors
        finally:
            if edge is not None:
                edge.stop()
            cluster.stop_all()


def _raw_get(edge: EdgeProcess, path: str) -> bytes:
    """Everything the edge sends for one GET (connection: close), interim heads included."""
    host, port = edge.listener_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: f.test\r\nConnection: close\r\n\r\n" % path.encode()
        )
        out = bytearray()
        while data := sock.recv(65536):
            out += data
    return bytes(out)


def _final(sent: bytes) -> tuple[bytes, bytes]:
    """The final response's head and body (a Content-Length or chunked body)."""
    at = 0
    while sent.startswith(b"HTTP/1.1 1", at):
        at = sent.index(b"\r\n\r\n", at) + 4
    head, _, body = sent[at:].partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        plain = bytearray()
        while True:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            plain += body[:size]
            body = body[size + 2 :]
        body = bytes(plain)
    return head, body


def _x_cache(head: bytes) -> str:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-cache:"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_a_body_delimited_by_the_close_is_stored_whole(setup, version):
    origin, edge = setup
    path = f"/close/{version}"
    head, body = _final(_raw_get(edge, path))
    assert head.startswith(b"HTTP/1.1 200"), head
    assert (_x_cache(head), body) == ("MISS", b"delimited by the close #1")
    head, body = _final(_raw_get(edge, path))
    assert (_x_cache(head), body) == ("HIT", b"delimited by the close #1")
    assert origin.counts[path] == 1


def test_a_body_longer_than_its_length_is_stored_as_declared(setup):
    origin, edge = setup
    head, body = _final(_raw_get(edge, "/longer"))
    assert head.startswith(b"HTTP/1.1 200"), head
    assert (_x_cache(head), body) == ("MISS", b"hello")
    head, body = _final(_raw_get(edge, "/longer"))
    assert (_x_cache(head), body) == ("HIT", b"hello")
    assert origin.counts["/longer"] == 1


def test_interim_responses_reach_the_fetching_client_and_are_never_stored(setup):
    origin, edge = setup
    fetched = _raw_get(edge, "/hints")
    assert fetched.startswith(b"HTTP/1.1 103 Early Hints\r\n"), fetched
    assert b"Link: </hint.css>; rel=preload\r\n" in fetched.partition(b"\r\n\r\n")[0]
    head, body = _final(fetched)
    assert (_x_cache(head), body) == ("MISS", b"hinted #1")
    hit = _raw_get(edge, "/hints")
    assert hit.startswith(b"HTTP/1.1 200"), hit  # no 1xx before a hit
    head, body = _final(hit)
    assert (_x_cache(head), body) == ("HIT", b"hinted #1")
    assert b"hint.css" not in head  # the 103's fields are not the stored response's
    assert origin.counts["/hints"] == 1
