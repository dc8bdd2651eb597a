"""The memory case: Dispa, nginx and HAProxy each holding --idle-conns (10,000) idle
keep-alive client connections opened by idle_clients.py; RSS and peak RSS summed over the
server's process tree. Target (c): Dispa's peak RSS."""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
import time
from typing import Any

from cases_http1 import start_proxy
from harness import BENCH_DIR, BenchError, Ctx, fmt, log, tree_mem

IDLE_CLIENT = BENCH_DIR / "idle_clients.py"
SERVERS = ("dispa-minimal", "nginx", "haproxy")
TARGET_RSS_MIB = 100.0
HEADER = ["server", "RSS idle MiB", "RSS MiB", "peak RSS MiB", "KiB/conn", "processes"]


def read_json_line(proc: subprocess.Popen[bytes], timeout: float, what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            with contextlib.suppress(ValueError):
                return json.loads(line)
        elif proc.poll() is not None:
            break
    raise BenchError(f"idle-connection client gave no {what} within {timeout:.0f} s")


def bench_memory(ctx: Ctx, kind: str) -> dict[str, Any]:
    a = ctx.args
    n = a.idle_conns
    log(f"\n== {kind}: memory with {n:,} idle keep-alive connections")
    proc, port = start_proxy(ctx, kind)
    client = None
    try:
        base = tree_mem(proc.pid)
        argv = [sys.executable, str(IDLE_CLIENT), "--port", str(port), "--count", str(n)]
        argv += ["--deadline", str(a.idle_deadline)]
        client = ctx.procs.start(
            f"idle-clients-{kind}", argv, cpu=ctx.load_cpu, nofile=ctx.nofile, pipes=True
        )
        ready = read_json_line(client, a.idle_deadline + 30, "ready report")
        if ready.get("event") != "ready":
            raise BenchError(f"idle-connection client failed: {ready.get('error', ready)}")
        log(f"  {ready['opened']:,} connections open in {ready['seconds']} s")
        if ready["failed"]:
            raise BenchError(
                f"{kind}: only {ready['opened']:,} of {n:,} idle connections could be "
                f"opened; errors: {ready['errors']}; server log:\n{ctx.procs.tail(proc)}"
            )
        time.sleep(a.settle)
        mem = tree_mem(proc.pid)
        assert client.stdin is not None
        client.stdin.write(b"check\n")
        client.stdin.flush()
        check = read_json_line(client, 60, "check report")
        if check.get("open", 0) < n:
            raise BenchError(
                f"{kind}: the server closed {check.get('closed')} of {n:,} idle connections "
                "before memory was read"
            )
        if proc.poll() is not None:
            raise BenchError(f"{kind} exited while holding the connections")
        res = {
            "connections": n,
            "open_seconds": ready["seconds"],
            "idle_rss_mib": round(base["rss_kib"] / 1024, 1),
            "rss_mib": round(mem["rss_kib"] / 1024, 1),
            "peak_rss_mib": round(mem["hwm_kib"] / 1024, 1),
            "kib_per_conn": round((mem["rss_kib"] - base["rss_kib"]) / n, 2),
            "processes": mem["processes"],
        }
        log(
            f"  RSS {res['idle_rss_mib']} MiB idle -> {res['rss_mib']} MiB, "
            f"peak {res['peak_rss_mib']} MiB ({res['kib_per_conn']} KiB/conn, "
            f"{res['processes']} process(es))"
        )
        return res
    finally:
        if client is not None:
            ctx.procs.stop(client, grace=15.0)  # closing its stdin makes it exit cleanly
        ctx.procs.stop(proc)


def summary_target(results: dict[str, Any]) -> dict[str, Any]:
    mem = results["memory"].get("dispa-minimal", {}).get("peak_rss_mib")
    n = results["settings"]["idle_conns"]
    return {
        "target": f"(c) Dispa peak RSS with {n:,} idle connections <= {TARGET_RSS_MIB:.0f} MiB",
        "value": mem,
        "shown": fmt(mem, ".1f", "-") + (" MiB" if mem is not None else ""),
        "status": "NOT MEASURED" if mem is None else ("PASS" if mem <= TARGET_RSS_MIB else "MISS"),
    }


def rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for kind in SERVERS:
        res = results["memory"].get(kind)
        if res is None:
            continue
        rows.append(
            [
                kind,
                f"{res['idle_rss_mib']:.1f}",
                f"{res['rss_mib']:.1f}",
                f"{res['peak_rss_mib']:.1f}",
                f"{res['kib_per_conn']:.2f}",
                str(res["processes"]),
            ]
        )
    return rows
