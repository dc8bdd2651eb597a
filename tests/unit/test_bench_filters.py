"""bench/cases_filters.py: the 4 KiB POST the filter cases send (checked with a real wrk
against a real server when wrk is installed), the rewrite the body filter makes of it,
and the ratios and report lines worked out from a run's results."""

from __future__ import annotations

import http.server
import importlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dispa.proxy.filters.body_replace import replaced

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _import_bench(*names: str) -> list:
    """Import bench modules by their bench-local names without leaving them in
    sys.modules or bench/ on sys.path: `harness` is also tests/adversarial/harness.py,
    and a whole-suite run in one process must find each under its own name."""
    local = {path.stem for path in BENCH.glob("*.py")}
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name in local}
    sys.path.insert(0, str(BENCH))
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        sys.path.remove(str(BENCH))
        for name in local:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


cases_filters, report = _import_bench("cases_filters", "report")


def test_the_post_body_is_4_kib_with_the_find_string_on_every_line() -> None:
    body = cases_filters.POST_BODY
    assert len(body) == 4096
    lines = body.splitlines(keepends=True)
    assert len(lines) == 64 and all(len(line) == 64 for line in lines)
    assert all(cases_filters.FIND.encode() in line for line in lines)
    assert len(body) < cases_filters.MAX_BODY


def test_the_body_filter_rewrites_every_line_of_it() -> None:
    rules = ((cases_filters.FIND.encode(), cases_filters.REPLACE.encode()),)
    out = replaced(rules, cases_filters.POST_BODY)
    assert out is not None and len(out) == 4160
    assert out.count(cases_filters.REPLACE.encode()) == 64
    assert cases_filters.FIND.encode() not in out


def test_the_lua_script_holds_the_body_byte_for_byte() -> None:
    script = cases_filters.lua_script()
    assert 'wrk.method = "POST"' in script
    opening = "wrk.body = [==[\n"
    inner = script.split(opening, 1)[1].rsplit("]==]", 1)[0]
    assert inner.encode() == cases_filters.POST_BODY  # Lua drops the newline after [==[
    assert script.count("]==]") == 1


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # the stdlib's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if len(self.bodies) < 5:
            self.bodies.append((self.command, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_sends_that_body_with_the_script(tmp_path: Path) -> None:
    script = tmp_path / "post4k.lua"
    script.write_text(cases_filters.lua_script())
    _Recorder.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        argv = ["wrk", "-t1", "-c1", "-d1s", "-s", str(script), url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    assert _Recorder.bodies, out.stdout
    assert all(got == ("POST", cases_filters.POST_BODY) for got in _Recorder.bodies)


def _run(rps: dict[str, dict[str, float]]) -> dict:
    def case(value: float, noisy: bool = False) -> dict:
        return {"rps": value, "p50_ms": 1.0, "p99_ms": 2.0, "noisy": noisy}

    return {
        "throughput": {kind: case(v) for kind, v in rps.get("throughput", {}).items()},
        "cache": {},
        "filters": {kind: case(v) for kind, v in rps.get("filters", {}).items()},
        "memory": {},
    }


def test_ratios_are_to_the_baselines_of_the_same_load() -> None:
    results = _run(
        {
            "throughput": {"nginx": 1000.0, "haproxy": 800.0, "dispa-minimal": 500.0},
            "filters": {
                "dispa-fault-delay0": 400.0,
                "nginx-post4k": 2000.0,
                "haproxy-post4k": 1600.0,
                "dispa-post4k": 1000.0,
                "dispa-body-replace": 500.0,
            },
        }
    )
    lines = cases_filters.summary_targets(results)
    f = results["filters"]
    assert (f["dispa-fault-delay0"]["x_nginx"], f["dispa-fault-delay0"]["x_haproxy"]) == (0.4, 0.5)
    assert f["dispa-fault-delay0"]["x_no_filter"] == 0.8
    assert (f["dispa-body-replace"]["x_nginx"], f["dispa-body-replace"]["x_haproxy"]) == (
        0.25,
        0.312,
    )
    assert f["dispa-body-replace"]["x_no_filter"] == 0.5
    assert f["dispa-post4k"]["x_no_filter"] is None
    assert [line["status"] for line in lines] == ["INFO", "INFO"]
    assert lines[0]["shown"] == "0.40x nginx, 0.80x dispa-minimal"
    assert (
        lines[1]["shown"].startswith("0.25x nginx-post4k")
        and "0.50x dispa-post4k" in (lines[1]["shown"])
    )
    table = cases_filters.rows(results)
    assert [row[0] for row in table] == list(cases_filters.CASES)
    assert [row[1] for row in table] == ["GET /"] + ["POST 4 KiB"] * 4


def test_a_case_not_run_is_not_measured_and_noise_is_said() -> None:
    results = _run({"filters": {"dispa-post4k": 1000.0}})
    results["filters"]["dispa-body-replace"] = {
        "rps": 900.0,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "noisy": False,
    }
    results["filters"]["dispa-post4k"]["noisy"] = True
    lines = cases_filters.summary_targets(results)
    assert lines[0]["status"] == "NOT MEASURED" and lines[0]["shown"] == "-"
    assert lines[1]["status"] == "INFO"
    assert lines[1]["shown"] == (
        "-x nginx-post4k (plain POST, no rewrite), 0.90x dispa-post4k (noisy run)"
    )


def test_the_docs_section_has_the_filter_table() -> None:
    results = _run(
        {
            "throughput": {"nginx": 1000.0, "dispa-minimal": 500.0},
            "filters": {"dispa-fault-delay0": 400.0},
        }
    )
    results.update(
        command="bench/run.py",
        date="now",
        cpu={"model": "cpu", "count": 2, "pinning": "pinned"},
        versions={"dispa": "x", "nginx": "1", "haproxy": "-", "wrk": "4", "python": "3"},
        settings={"warmup": 2, "threads": 1, "connections": 64, "duration": 10, "idle_conns": 1},
        failures=[],
    )
    results["summary"] = report.compute_summary(results)
    section = report.docs_section(results)
    assert cases_filters.TITLE in section
    assert "| dispa-fault-delay0 | GET / | 400 | 0.40 |" in section
    assert "INFO: one async filter answering at once" in section
