"""Route regexes cannot be made to backtrack: one request must not stall the gateway.

With Python's ``re``, ``path_regex: "/(a+)+$"`` against ``/aaa...a!`` took time exponential
in the number of letters (24 letters: 3 s; 40: longer than the universe has been around),
on the data plane's only thread: every listener stopped answering. Route regexes run on
RE2 now, in time linear in the path.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time

from conftest import HOST, PYTHON, REPO, make_config
from harness import Probe, read_until_closed, rss_kib, wait_rss_within


def _get(port: int, path: bytes, header: bytes = b"") -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(
            b"GET "
            + path
            + b" HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n"
            + header
            + b"\r\n"
        )
        return read_until_closed(sock, timeout=5, idle=2)


def test_a_backtracking_path_regex_does_not_stall_the_gateway(processes, tmp_path):
    config = make_config(
        [],
        [
            {
                "name": "letters",
                "match": {"path_regex": "/(a+)+$"},
                "direct_response": {"status": 200, "body": "letters\n"},
            },
            {
                "name": "header",
                "match": {"path_prefix": "/h", "headers": [{"name": "x-a", "regex": "(a|aa)*b"}]},
                "direct_response": {"status": 200, "body": "header\n"},
            },
            {"name": "rest", "direct_response": {"status": 200, "body": "rest\n"}},
        ],
    )
    gateway = processes.gateway(config, tmp_path)
    assert _get(gateway.port, b"/aaaa").endswith(b"letters\n")
    baseline = rss_kib(gateway.pid)

    attack_path = b"/" + b"a" * 4000 + b"!"
    attack_header = b"x-a: " + b"a" * 4000 + b"c\r\n"
    answers: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def attacker() -> None:
        while not stop.is_set() and len(answers) < 2000:
            started = time.monotonic()
            try:
                path_answer = _get(gateway.port, attack_path)
                header_answer = _get(gateway.port, b"/h", attack_header)
            except OSError as error:
                failures.append(repr(error))
                continue
            if not path_answer.endswith(b"rest\n") or not header_answer.endswith(b"rest\n"):
                failures.append(repr((path_answer[-40:], header_answer[-40:])))
            answers.append(time.monotonic() - started)

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(4)]
    with Probe(gateway.port, "/aaaa") as probe:
        for thread in threads:
            thread.start()
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert not failures, failures[:3]
    assert len(answers) >= 20, f"only {len(answers)} attack rounds were answered in 3 s"
    assert max(answers) < 2.0, f"slowest attack round: {max(answers):.2f} s"
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(gateway.pid, baseline, factor=1.2)


def test_a_regex_re2_cannot_run_is_a_config_error_naming_its_field(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listeners: [{name: public, address: '127.0.0.1:0'}]\n"
        "routes:\n"
        "  - match: {path_regex: '/(a)\\1'}\n"
        "    direct_response: {status: 200}\n"
        "  - match: {headers: [{name: x-a, regex: '(?=x)'}]}\n"
        "    direct_response: {status: 200}\n"
    )
    result = subprocess.run(
        [PYTHON, "-m", "dispa", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "routes[0].match.path_regex: bad regular expression" in result.stderr, result.stderr
    assert "routes[1].match.headers[0].regex: bad regular expression" in result.stderr
