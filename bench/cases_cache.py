"""Cache-hit cases: a real `dispa edge` with its memory cache against nginx `proxy_cache`,
each asked for the upstream's cacheable CACHE_PATH only, so that after the first request no
response comes from the upstream. Reported as the ratio of the two (no target)."""

from __future__ import annotations

import http.client
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from cases_http1 import bench_throughput
from harness import (
    CACHE_BODY,
    CACHE_PATH,
    REPO,
    BenchError,
    Ctx,
    dispa_command,
    dispa_python,
    fmt,
    http_get,
    log,
    nginx_argv,
    render,
    start_pinned,
)

CASES = ("nginx-cache", "dispa-edge-cache")  # the reference is nginx-cache

# Each proxy marks a hit in its own response header. During a measured run the upstream
# must stay idle: above UPSTREAM_MAX_PCT of a CPU it served misses and the run is rejected.
HIT_HEADER = {"nginx-cache": "x-cache-status", "dispa-edge-cache": "x-cache"}
UPSTREAM_MAX_PCT = 5.0

HEADER = [
    "case",
    "req/s",
    "x nginx-cache",
    "p50 ms",
    "p99 ms",
    "proxy CPU",
    "upstream CPU",
    "other load",
]
TITLE = (
    f"Cache hits (GET {CACHE_PATH}, stored after the first request; Dispa edge with its "
    "memory cache vs nginx proxy_cache, one worker each; upstream CPU near 0% shows that "
    "the upstream served no request during the run):"
)


def bench_case(ctx: Ctx, kind: str) -> dict[str, Any]:
    return bench_throughput(ctx, kind, start_proxy, CACHE_PATH, "cache hits", UPSTREAM_MAX_PCT)


def start_proxy(ctx: Ctx, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the caching proxy, pinned, and wait until it answers a cache hit."""
    port = ctx.port(kind)
    upstream = ctx.port("upstream")
    workdir = ctx.tmp / kind
    workdir.mkdir(parents=True, exist_ok=True)
    cwd: Path | None = None
    if kind == "nginx-cache":
        (workdir / "tmp").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            # A root master runs its worker as `nobody`, which must reach the cache files
            # under the temp prefix (mkdtemp makes it 0700): let it traverse, not list.
            ctx.tmp.chmod(0o711)
        conf = render(
            "nginx-cache.conf",
            workdir / "nginx.conf",
            PREFIX=workdir,
            PORT=port,
            UPSTREAM_PORT=upstream,
            NOFILE=ctx.nofile,
            WORKER_CONNECTIONS=ctx.args.idle_conns + 4096,
        )
        argv = nginx_argv(ctx, workdir, conf)
    elif kind == "dispa-edge-cache":
        data_dir = workdir / "data"
        shared = render("dispa-edge-shared.json", workdir / "shared.json", UPSTREAM_PORT=upstream)
        write_edge_snapshot(data_dir, shared)
        cfg = render(
            "dispa-edge-cache.yaml",
            workdir / "edge.yaml",
            PORT=port,
            ADMIN_PORT=ctx.port(f"{kind}-admin"),
            CORE_PORT=ctx.port(f"{kind}-core"),  # reserved, nothing listens there
            DATA_DIR=data_dir,
        )
        argv = dispa_command(ctx, cfg, "edge")
        cwd = REPO
    else:
        raise BenchError(f"unknown proxy {kind}")

    def check(proc: subprocess.Popen[bytes]) -> None:
        cache_check(ctx, kind, proc, port)

    return start_pinned(ctx, kind, argv, port, None, check, cwd), port


def write_edge_snapshot(data_dir: Path, shared: Path) -> None:
    """Persist the shared config in `shared` (JSON) as the edge's last applied config, so
    that the edge serves it with no core running. Done by Dispa's own code
    (dispa.edge.persist.save_snapshot) in a child Python: this harness stays stdlib only."""
    code = (
        "import json, sys\n"
        "from dispa.edge.persist import save_snapshot\n"
        "config = json.load(open(sys.argv[2]))\n"
        "save_snapshot(sys.argv[1], "
        '{"revision": 1, "config": config, "committed_at": 0, "purge_seq": 0})\n'
    )
    argv = [dispa_python(), "-c", code, str(data_dir), str(shared)]
    try:
        out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError("writing the edge's config snapshot took over 60 s") from exc
    if out.returncode != 0:
        raise BenchError(f"could not write the edge's config snapshot:\n{out.stderr.strip()}")


def cache_check(ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    """Readiness and sanity check of a cache-hit case: GET /cached through the proxy
    until it answers 200 with the upstream's body, marked a cache hit (the first request
    is the miss that stores it). A cache case that measured misses would be wrong."""
    header = HIT_HEADER[name]
    deadline = time.monotonic() + ctx.args.ready_timeout
    problem = "no attempt"
    while time.monotonic() < deadline:
        try:
            status, headers, body = http_get(port, CACHE_PATH, timeout=2.0)
        except (OSError, http.client.HTTPException) as exc:
            problem = repr(exc)
        else:
            hit = headers.get(header, "").upper() == "HIT"
            if status == 200 and body == CACHE_BODY and hit:
                log(f"  GET {CACHE_PATH}: 200, {header}: HIT")
                return
            problem = f"status {status}, body {body[:80]!r}, {header}: {headers.get(header)!r}"
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise BenchError(
        f"{name}: GET {CACHE_PATH} through the proxy did not return a 200 {CACHE_BODY!r} "
        f"cache hit within {ctx.args.ready_timeout:.0f} s ({problem}); "
        f"last log lines:\n{ctx.procs.tail(proc)}"
    )


def summary_target(results: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """The ratios to nginx-cache, set on each case, and the cache-hit line (informational:
    the issue sets no number for it)."""
    cache = results["cache"]
    nginx_cache = cache.get("nginx-cache", {}).get("rps")
    for res in cache.values():
        res["x_nginx_cache"] = round(res["rps"] / nginx_cache, 3) if nginx_cache else None
    c = cache.get("dispa-edge-cache", {}).get("x_nginx_cache")
    c_note = " (noisy run)" if c is not None and any(r["noisy"] for r in cache.values()) else ""
    return c, {
        "target": "cache hit: Dispa edge vs nginx proxy_cache",
        "value": c,
        "shown": fmt(c, ".2f", "-") + ("x" if c is not None else "") + c_note,
        "status": "NOT MEASURED" if c is None else "INFO",
    }


def rows(results: dict[str, Any]) -> list[list[str]]:
    table = []
    for kind in CASES:
        res = results["cache"].get(kind)
        if res is None:
            continue
        table.append(
            [
                kind,
                f"{res['rps']:,.0f}",
                fmt(res.get("x_nginx_cache"), ".2f"),
                f"{res['p50_ms']:.3f}",
                f"{res['p99_ms']:.3f}",
                fmt(res.get("proxy_cpu_pct"), ".0f") + "%",
                fmt(res.get("upstream_cpu_pct"), ".0f") + "%",
                fmt(res.get("other_cpu_pct"), ".0f") + ("% *" if res.get("noisy") else "%"),
            ]
        )
    return table
