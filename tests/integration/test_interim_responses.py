"""Interim (1xx) responses through a real gateway, seen by real clients: curl over
HTTP/1.1 and HTTP/2 gets the upstream's 102 and 103 (Early Hints, its Link fields
included) before the final answer; an HTTP/1.0 client gets none; a client that sent
``Expect: 100-continue`` (curl does for bodies over 1 MiB) gets exactly one 100, the
gateway's own, whatever the upstream sends. Upstreams: a raw scripted HTTP/1.1 one
(scripted_upstream.py) and the h2 one (upstreams/h2_upstream.py, /early-hints)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import (
    HOST,
    PYTHON,
    can_connect,
    curl,
    free_port,
    make_config,
    raw_connection,
    read_response,
    wait_until,
)
from scripted_upstream import Conversation, ScriptedUpstream
from test_h2_upstream import H2_UPSTREAM

EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
    b"Connection: x-hop\r\nX-Hop: must-not-pass\r\n\r\n"
)
MIB = 1024 * 1024


def _answer(conversation: Conversation) -> None:
    """Per request: 102, 103 (with a field its Connection names), then a final answer
    that says how much body it read. A request with Expect: 100-continue gets the
    upstream's own 100 first, before its body is read."""
    while (request := conversation.read_request(with_body=False)) is not None:
        head = request[0]
        if b"expect: 100-continue" in head.lower():
            conversation.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = conversation.read_body(head)
        conversation.send(b"HTTP/1.1 102 Processing\r\n\r\n" + EARLY_HINTS)
        payload = json.dumps({"size": len(body)}).encode()
        conversation.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )


@pytest.fixture
def gateway(processes, tmp_path):
    with ScriptedUpstream(_answer) as upstream:
        config = make_config(
            [{"name": "hints", "endpoints": [{"address": upstream.address}]}],
            [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "hints"}],
        )
        yield processes.gateway(config, tmp_path)
        assert not upstream.errors, upstream.errors


def _blocks(dump: bytes) -> list[list[str]]:
    """curl -D output: one list of lines per head, status line first."""
    text = dump.decode("latin-1").replace("\r\n", "\n").strip()
    return [block.splitlines() for block in re.split(r"\n\n+", text) if block]


@pytest.mark.parametrize("http", ["--http1.1", "--http2-prior-knowledge"])
def test_curl_gets_the_interim_heads_before_the_final_one(gateway, http):
    result = curl(http, "-sS", "-D", "-", "-o", "/dev/null", gateway.url("/page"))
    assert result.returncode == 0, result.stderr
    blocks = _blocks(result.stdout)
    statuses = [block[0].split()[1] for block in blocks]
    assert statuses == ["102", "103", "200"], blocks
    hints = [line.lower() for line in blocks[1]]
    assert "link: </style.css>; rel=preload; as=style" in hints, blocks[1]
    assert not any(line.startswith(("x-hop", "connection", "content-length")) for line in hints)
    assert not any(line.startswith("x-request-id") for line in hints)  # the final's own


def test_an_http10_client_gets_no_interim_head(gateway):
    with raw_connection(gateway.port) as (sock, stream):
        sock.sendall(b"GET /old HTTP/1.0\r\nHost: h.test\r\n\r\n")
        response = read_response(stream)
    assert response.status == 200
    assert json.loads(response.body) == {"size": 0}


@pytest.mark.parametrize("http", ["--http1.1", "--http2-prior-knowledge"])
def test_a_large_upload_with_expect_gets_exactly_one_100(gateway, http, tmp_path):
    """curl sends Expect: 100-continue for a body over 1 MiB and waits for a 100. The
    gateway says 100 at once (a body held whole goes upstream only once it is all here);
    the upstream's own 100 is not sent on, so curl sees one."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"u" * (2 * MIB))
    result = curl(
        http,
        "-sS",
        "-v",
        "-H",
        "Expect: 100-continue",  # what curl says by itself over HTTP/1.1, not over HTTP/2
        "--expect100-timeout",
        "10",
        "--data-binary",
        f"@{upload}",
        gateway.url("/upload"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"size": 2 * MIB}
    received = [line for line in result.stderr.decode().splitlines() if line.startswith("< HTTP")]
    assert sum(" 100" in line for line in received) == 1, received
    assert [line.split()[2] for line in received if " 100" not in line] == ["102", "103", "200"]


@pytest.fixture
def h2_gateway(processes, tmp_path):
    port = free_port()
    processes.start([PYTHON, str(H2_UPSTREAM), "--port", str(port)], "h2-upstream")
    wait_until(lambda: can_connect(port), what="the h2 upstream to listen")
    config = make_config(
        [{"name": "h2", "protocol": "h2", "endpoints": [{"address": f"{HOST}:{port}"}]}],
        [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "h2"}],
    )
    return processes.gateway(config, tmp_path)


@pytest.mark.parametrize("http", ["--http1.1", "--http2-prior-knowledge"])
def test_an_h2_upstreams_early_hints_reach_the_client(h2_gateway, http):
    result = curl(http, "-sS", "-D", "-", "-o", "/dev/null", h2_gateway.url("/early-hints"))
    assert result.returncode == 0, result.stderr
    blocks = _blocks(result.stdout)
    assert [block[0].split()[1] for block in blocks] == ["103", "200"], blocks
    assert "link: </style.css>; rel=preload; as=style" in [line.lower() for line in blocks[0]]
