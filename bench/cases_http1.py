"""HTTP/1.1 throughput cases: nginx, HAProxy and Dispa (case (a) minimal, case (b) the
default filter chain), each pinned in turn in front of the same upstream under the same
wrk load. The cache-hit cases (cases_cache.py) reuse the measuring loop here."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import (
    CLK_TCK,
    OTHER_LOAD_WARN_PCT,
    REPO,
    BenchError,
    Ctx,
    busy_ticks,
    cpu_ticks,
    dispa_command,
    fmt,
    log,
    nginx_argv,
    proc_tree,
    render,
    run_wrk,
    rusage_seconds,
    sanity_check,
    start_pinned,
)

CASES = ("nginx", "haproxy", "dispa-minimal", "dispa-chain")

# Targets: Dispa case (a) and (b) throughput as a fraction of nginx.
TARGET_MINIMAL = 0.6
TARGET_CHAIN = 0.5

HEADER = [
    "case",
    "req/s",
    "x nginx",
    "x haproxy",
    "p50 ms",
    "p99 ms",
    "proxy CPU",
    "other load",
]


def start_proxy(ctx: Ctx, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the proxy under test on its own port, pinned, and wait until it serves."""
    port = ctx.port(kind)
    upstream = ctx.port("upstream")
    workdir = ctx.tmp / kind
    workdir.mkdir(parents=True, exist_ok=True)
    admin_port = None
    header = None
    cwd: Path | None = None
    if kind == "nginx":
        (workdir / "tmp").mkdir(exist_ok=True)
        conf = render(
            "nginx-proxy.conf",
            workdir / "nginx.conf",
            PREFIX=workdir,
            PORT=port,
            UPSTREAM_PORT=upstream,
            NOFILE=ctx.nofile,
            WORKER_CONNECTIONS=ctx.args.idle_conns + 4096,
        )
        argv = nginx_argv(ctx, workdir, conf)
    elif kind == "haproxy":
        cfg = render(
            "haproxy.cfg",
            workdir / "haproxy.cfg",
            PORT=port,
            UPSTREAM_PORT=upstream,
            MAXCONN=ctx.args.idle_conns + 1024,
            NOFILE=ctx.nofile,
        )
        argv = [ctx.tools["haproxy"], "-f", str(cfg), "-db"]
    elif kind in ("dispa-minimal", "dispa-chain"):
        admin_port = ctx.port(f"{kind}-admin")
        cfg = render(
            f"{kind}.yaml",
            workdir / "dispa.yaml",
            PORT=port,
            UPSTREAM_PORT=upstream,
            ADMIN_PORT=admin_port,
        )
        argv = dispa_command(ctx, cfg)
        header = "x-served-by" if kind == "dispa-chain" else None
        cwd = REPO  # so that `python -m dispa` finds the package without installation
    else:
        raise BenchError(f"unknown proxy {kind}")

    def check(proc: subprocess.Popen[bytes]) -> None:
        sanity_check(ctx, kind, proc, port, header)

    return start_pinned(ctx, kind, argv, port, admin_port, check, cwd), port


def measure_once(
    ctx: Ctx,
    kind: str,
    proc: subprocess.Popen[bytes],
    port: int,
    path: str = "/",
    upstream_max_pct: float | None = None,
    script: Path | None = None,
) -> dict:
    """One measured wrk run, with CPU accounting: the proxy's share of its core, and the
    CPU used on our two cores by anything not ours (other load on the machine). With
    `upstream_max_pct`, a run in which the upstream used more is rejected (cache hits)."""
    a = ctx.args
    pids = proc_tree(proc.pid)
    up_pids = proc_tree(ctx.upstream.pid) if ctx.upstream else []
    cpus = set(os.sched_getaffinity(0)) if ctx.proxy_cpu is None else {ctx.proxy_cpu, ctx.load_cpu}
    p0, u0, b0 = cpu_ticks(pids), cpu_ticks(up_pids), busy_ticks(cpus)
    c0 = rusage_seconds(resource.RUSAGE_CHILDREN) + rusage_seconds(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    flags = f" -s {script.name}" if script is not None else ""
    log(f"  wrk -t{a.threads} -c{a.connections} -d{a.duration}s{flags} --latency {path}")
    res = run_wrk(ctx, port, a.duration, path, script)
    wall = time.monotonic() - t0
    proxy_s = (cpu_ticks(pids) - p0) / CLK_TCK
    upstream_s = (cpu_ticks(up_pids) - u0) / CLK_TCK
    busy_s = (busy_ticks(cpus) - b0) / CLK_TCK
    ours_s = rusage_seconds(resource.RUSAGE_CHILDREN) + rusage_seconds(resource.RUSAGE_SELF)
    ours_s += proxy_s + upstream_s - c0  # wrk has exited and been reaped: in CHILDREN
    res["proxy_cpu_pct"] = round(100.0 * proxy_s / wall, 1)
    res["upstream_cpu_pct"] = round(100.0 * upstream_s / wall, 1)
    res["other_cpu_pct"] = round(max(0.0, 100.0 * (busy_s - ours_s) / wall), 1)
    if proc.poll() is not None:
        raise BenchError(f"{kind} exited during the run:\n{ctx.procs.tail(proc)}")
    if not res.get("requests"):
        raise BenchError(f"{kind}: wrk completed no requests")
    if res["non_2xx_3xx"]:
        raise BenchError(
            f"{kind}: {res['non_2xx_3xx']} of {res['requests']} responses were not "
            "2xx/3xx, so the req/s figure is not a proxying figure"
        )
    if upstream_max_pct is not None and res["upstream_cpu_pct"] > upstream_max_pct:
        raise BenchError(
            f"{kind}: the upstream used {res['upstream_cpu_pct']:.0f}% of a CPU during the "
            "run, so responses were not all cache hits: not a cache-hit figure"
        )
    if sum(res["socket_errors"].values()):
        log(f"  warning: wrk socket errors {res['socket_errors']}")
    log(
        f"  {res['rps']:,.0f} req/s, p50 {res['p50_ms']:.3f} ms, p99 {res['p99_ms']:.3f} ms, "
        f"proxy CPU {res['proxy_cpu_pct']:.0f}%, upstream CPU {res['upstream_cpu_pct']:.0f}%, "
        f"other load {res['other_cpu_pct']:.0f}%"
    )
    return res


def bench_throughput(
    ctx: Ctx,
    kind: str,
    start=start_proxy,
    path: str = "/",
    what: str = "throughput",
    upstream_max_pct: float | None = None,
    script: Path | None = None,
) -> dict[str, Any]:
    """Warm up, then measure; a run disturbed by other load on the benchmark cores is
    repeated (--noise-retries times at most) and the least disturbed run is kept."""
    a = ctx.args
    log(f"\n== {kind}: {what}")
    proc, port = start(ctx, kind)
    try:
        log(f"  warm-up {a.warmup} s")
        if a.warmup > 0:
            run_wrk(ctx, port, a.warmup, path, script)
        best: dict[str, Any] | None = None
        for attempt in range(1 + a.noise_retries):
            res = measure_once(ctx, kind, proc, port, path, upstream_max_pct, script)
            res["attempts"] = attempt + 1
            if best is None or res["other_cpu_pct"] < best["other_cpu_pct"]:
                best = res
            if res["other_cpu_pct"] <= OTHER_LOAD_WARN_PCT:
                break
            if attempt < a.noise_retries:
                log(
                    f"  other processes used {res['other_cpu_pct']:.0f}% of a CPU on the "
                    "benchmark cores: measuring again"
                )
        assert best is not None
        best["attempts"] = res["attempts"]
        best["noisy"] = best["other_cpu_pct"] > OTHER_LOAD_WARN_PCT
        if best["noisy"]:
            log(
                f"  warning: every run of {kind} shared its cores with other load (least: "
                f"{best['other_cpu_pct']:.0f}% of a CPU); its ratios are unreliable"
            )
        return best
    finally:
        ctx.procs.stop(proc)


def summary_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios to nginx and HAProxy, set on each case, and targets (a) and (b)."""
    tp = results["throughput"]
    nginx = tp.get("nginx", {}).get("rps")
    haproxy = tp.get("haproxy", {}).get("rps")
    for res in tp.values():
        res["x_nginx"] = round(res["rps"] / nginx, 3) if nginx else None
        res["x_haproxy"] = round(res["rps"] / haproxy, 3) if haproxy else None

    def target(desc: str, value: float | None, ok: bool | None, shown: str) -> dict:
        status = "NOT MEASURED" if value is None else ("PASS" if ok else "MISS")
        return {"target": desc, "value": value, "shown": shown, "status": status}

    a = tp.get("dispa-minimal", {}).get("x_nginx")
    b = tp.get("dispa-chain", {}).get("x_nginx")
    noisy = " (noisy run)"
    a_note = (
        noisy if a is not None and (tp["dispa-minimal"]["noisy"] or tp["nginx"]["noisy"]) else ""
    )
    b_note = noisy if b is not None and (tp["dispa-chain"]["noisy"] or tp["nginx"]["noisy"]) else ""
    return [
        target(
            f"(a) Dispa minimal route >= {TARGET_MINIMAL}x nginx req/s",
            a,
            a is not None and a >= TARGET_MINIMAL,
            fmt(a, ".2f", "-") + ("x" if a is not None else "") + a_note,
        ),
        target(
            f"(b) Dispa default chain >= {TARGET_CHAIN}x nginx req/s",
            b,
            b is not None and b >= TARGET_CHAIN,
            fmt(b, ".2f", "-") + ("x" if b is not None else "") + b_note,
        ),
    ]


def rows(results: dict[str, Any]) -> list[list[str]]:
    table = []
    for kind in CASES:
        res = results["throughput"].get(kind)
        if res is None:
            continue
        table.append(
            [
                kind,
                f"{res['rps']:,.0f}",
                fmt(res.get("x_nginx"), ".2f"),
                fmt(res.get("x_haproxy"), ".2f"),
                f"{res['p50_ms']:.3f}",
                f"{res['p99_ms']:.3f}",
                fmt(res.get("proxy_cpu_pct"), ".0f") + "%",
                fmt(res.get("other_cpu_pct"), ".0f") + ("% *" if res.get("noisy") else "%"),
            ]
        )
    return table
