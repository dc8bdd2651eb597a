"""A hostile HTTP/1.1 upstream against the gateway's framing: it may not make the gateway
buffer or relay interim heads without end, and bytes it sends after a response's
declared end may not reach any client.

- Endless 1xx heads: interim heads count with the head they come before against one
  64 KiB bound (docs/security.md), so each attacker's request ends in a 502 soon, the
  gateway's memory comes back, and other clients are answered meanwhile.
- A response smuggled after a body's Content-Length (the classic desync: the next
  client on that connection would read it as its answer): dropped with the connection.
"""

from __future__ import annotations

import socket
import threading
import time

from conftest import HOST, make_config
from harness import Probe, read_until_closed, rss_kib, wait_rss_within
from scripted_upstream import Conversation, ScriptedUpstream

PLAIN = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
INTERIM = b"HTTP/1.1 102 Processing\r\n\r\n"
# What one flooding answer may send at most (bounded whatever the gateway does): 10 MiB.
FLOOD_HEADS = 10 * 1024 * 1024 // len(INTERIM)
ATTACKERS = 20


def _polite(conversation: Conversation) -> None:
    while conversation.read_request() is not None:
        conversation.send(PLAIN)


class Flood:
    """102 after 102, in writes of 64 KiB every 20 ms, until the gateway hangs up (or the
    bound); ``sent`` records how much each connection got out before that."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, conversation: Conversation) -> None:
        if conversation.read_request() is None:
            return
        batch = INTERIM * (65536 // len(INTERIM))
        sent = 0
        try:
            for _ in range(FLOOD_HEADS * len(INTERIM) // len(batch)):
                conversation.send(batch)  # raises once the gateway has closed
                sent += len(batch)
                time.sleep(0.02)  # paced: what the kernel buffers does not hide the cut
        finally:
            with self.lock:
                self.sent.append(sent)


def _config(hostile: str, polite: str) -> dict:
    return make_config(
        [
            {"name": "hostile", "endpoints": [{"address": hostile}], "retry": {"attempts": 1}},
            {"name": "polite", "endpoints": [{"address": polite}]},
        ],
        [
            {"name": "attack", "match": {"path_prefix": "/attack"}, "upstream": "hostile"},
            {"name": "rest", "match": {"path_prefix": "/"}, "upstream": "polite"},
        ],
    )


def _get(port: int, path: str) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".encode())
        return read_until_closed(sock, timeout=10, idle=5)


def test_endless_interim_heads_end_in_a_502_and_cost_the_gateway_nothing_lasting(
    processes, tmp_path
):
    flood = Flood()
    with ScriptedUpstream(flood) as hostile, ScriptedUpstream(_polite) as polite:
        gateway = processes.gateway(_config(hostile.address, polite.address), tmp_path)
        for _ in range(20):  # warm: the baseline is the gateway at work, not just started
            assert _get(gateway.port, "/warm").startswith(b"HTTP/1.1 200")
        baseline = rss_kib(gateway.pid)
        answers: list[bytes] = []
        lock = threading.Lock()

        def attack() -> None:
            answer = _get(gateway.port, "/attack")
            with lock:
                answers.append(answer)

        started = time.monotonic()
        with Probe(gateway.port, "/probe") as probe:
            threads = [threading.Thread(target=attack, daemon=True) for _ in range(ATTACKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            time.sleep(0.5)  # the probe keeps asking a little after the attack
        elapsed = time.monotonic() - started
        assert probe.ratio >= 0.95, probe.summary()
        assert len(answers) == ATTACKERS
        for answer in answers:
            # The heads forwarded before the bound, then the 502 that ends the request.
            assert b"HTTP/1.1 502 " in answer, answer[-300:]
            assert answer.count(INTERIM[:24]) * len(INTERIM) <= 64 * 1024, len(answer)
        assert elapsed < 25, elapsed
        # Cut off by the bound, after a few writes: not read to the flood's own end.
        assert len(flood.sent) == ATTACKERS
        assert max(flood.sent) < 1024 * 1024, flood.sent
        wait_rss_within(gateway.pid, baseline, factor=1.2)
        assert not polite.errors and not hostile.errors


def test_a_response_smuggled_after_a_declared_body_reaches_no_client(processes, tmp_path):
    forged = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nFORGED-ANSWER"

    def smuggler(conversation: Conversation) -> None:
        while conversation.read_request() is not None:
            # The declared body, then a whole second response that nothing asked for.
            conversation.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + forged)

    with ScriptedUpstream(smuggler) as hostile, ScriptedUpstream(_polite) as polite:
        gateway = processes.gateway(_config(hostile.address, polite.address), tmp_path)
        for _ in range(30):
            answer = _get(gateway.port, "/attack")
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert answer.endswith(b"\r\n\r\nhello"), answer
            assert b"FORGED" not in answer
        # One connection per response: none is reused after it went out of step.
        assert hostile.connections == 30
        assert not hostile.errors
