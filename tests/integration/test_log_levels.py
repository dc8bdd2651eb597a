"""``--log-level``: Dispa's own loggers follow it; third-party libraries stay at warning
unless the operator asks for them with ``LEVEL:all``.

The gateway serves HTTP/2 (hpack decodes every header block, and logs each field at
debug) and probes an endpoint that refuses connections (Dispa's health checker logs each
failed probe at debug), so both kinds of debug line have a reason to appear.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from conftest import (
    HOST,
    PYTHON,
    REPO,
    Processes,
    curl,
    free_port,
    http_get,
    make_config,
    wait_until,
)

# "2024-05-01 12:00:00,123 DEBUG hpack.hpack: Decoded ..." (cli.py's format)
LOG_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ([^:\s]+): ")


def logged(stderr: str) -> list[tuple[str, str]]:
    """(level, logger name) of every log line."""
    return [(match[1], match[2]) for line in stderr.splitlines() if (match := LOG_LINE.match(line))]


def is_dispa(name: str) -> bool:
    return name == "dispa" or name.startswith("dispa.")


def start_gateway(processes: Processes, upstream, workdir: Path, level: str, *extra: str):
    """A gateway run as ``dispa --log-level LEVEL run``, with one live endpoint and one
    that refuses connections; returns (process, public port)."""
    dead = f"{HOST}:{free_port()}"
    config = make_config(
        upstreams=[
            {
                "name": "app",
                "endpoints": [{"address": upstream.address}, {"address": dead}],
                "health": {"path": "/healthz", "interval": "100ms", "timeout": "1s"},
            }
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
    )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "gateway.yaml"
    path.write_text(json.dumps(config))
    argv = [PYTHON, "-m", "dispa", "--log-level", level, "run", "-c", str(path), *extra]
    process = processes.start(argv, "gateway")
    admin = config["admin"]["address"]

    def ready() -> bool:
        assert process.alive(), process.stderr_text()
        return http_get(f"http://{admin}/readyz", timeout=1.0)[0] == 200

    wait_until(ready, timeout=15.0, what="the gateway's /readyz")
    return process, int(config["listeners"][0]["address"].rpartition(":")[2])


def send_h2_requests(port: int) -> None:
    for _ in range(5):
        result = curl(
            "--http2-prior-knowledge", "-w", "\n%{http_version}", f"http://{HOST}:{port}/"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith(b"\n2"), result.stdout


def wait_for_dispa_debug(process) -> None:
    wait_until(
        lambda: ("DEBUG", "dispa.proxy.upstream.health_checker") in logged(process.stderr_text()),
        timeout=10.0,
        what="Dispa's own debug line about the refused health probe",
    )


def test_debug_keeps_third_party_loggers_at_warning(
    processes: Processes, upstream_a, tmp_path: Path
) -> None:
    process, port = start_gateway(processes, upstream_a, tmp_path, "debug")
    send_h2_requests(port)
    wait_for_dispa_debug(process)
    lines = logged(process.stderr_text())
    chatty = [
        (level, name) for level, name in lines if not is_dispa(name) and level in ("DEBUG", "INFO")
    ]
    assert chatty == [], chatty[:10]
    assert ("INFO", "dispa.run") in lines  # Dispa's own info lines are still there


def test_debug_all_lowers_third_party_loggers_too(
    processes: Processes, upstream_a, tmp_path: Path
) -> None:
    process, port = start_gateway(processes, upstream_a, tmp_path, "debug:all")
    send_h2_requests(port)
    wait_for_dispa_debug(process)
    wait_until(
        lambda: any(
            level == "DEBUG" and name.startswith("hpack")
            for level, name in logged(process.stderr_text())
        ),
        timeout=10.0,
        what="hpack's debug lines",
    )


def test_workers_are_handed_the_level_and_its_scope(
    processes: Processes, upstream_a, tmp_path: Path
) -> None:
    """The supervisor passes ``debug`` on to its workers: their own debug lines appear
    (the health checker runs in the workers), hpack's do not."""
    process, port = start_gateway(processes, upstream_a, tmp_path, "debug", "--workers", "2")
    send_h2_requests(port)
    wait_for_dispa_debug(process)
    lines = logged(process.stderr_text())
    chatty = [
        (level, name) for level, name in lines if not is_dispa(name) and level in ("DEBUG", "INFO")
    ]
    assert chatty == [], chatty[:10]


def test_workers_are_handed_all(processes: Processes, upstream_a, tmp_path: Path) -> None:
    process, port = start_gateway(processes, upstream_a, tmp_path, "debug:all", "--workers", "2")
    send_h2_requests(port)
    wait_until(
        lambda: any(
            level == "DEBUG" and name.startswith("hpack")
            for level, name in logged(process.stderr_text())
        ),
        timeout=10.0,
        what="hpack's debug lines from a worker",
    )


def run_dispa(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dispa", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_a_bad_level_is_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("listeners: []\n")
    for argv, env in (
        (("--log-level", "verbose", "validate", "-c", str(config)), None),
        (("--log-level", "debug:some", "validate", "-c", str(config)), None),
        (("validate", "-c", str(config)), {"DISPA_LOG_LEVEL": "loud"}),
    ):
        result = run_dispa(*argv, env=env)
        assert result.returncode == 2, result
        assert "--log-level" in result.stderr
        for valid in ("debug", "info", "warning", "error", ":all"):
            assert valid in result.stderr, result.stderr


def test_upper_case_and_all_forms_are_accepted(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listeners: [{name: public, address: 127.0.0.1:8080}]\n"
        "upstreams: [{name: app, endpoints: [{address: 127.0.0.1:9000}]}]\n"
        "routes: [{match: {path_prefix: /}, upstream: app}]\n"
    )
    for level in ("DEBUG", "info:all", "warning:ALL", "error"):
        result = run_dispa("--log-level", level, "validate", "-c", str(config))
        assert (result.returncode, result.stdout.strip()) == (0, "ok"), (level, result)
    result = run_dispa("validate", "-c", str(config), env={"DISPA_LOG_LEVEL": "debug:all"})
    assert result.returncode == 0, result
