"""Side-by-side benchmark of Dispa against nginx and HAProxy (`make bench`).

Every proxy runs in turn in the same invocation, on the same pinned core, in front of
the same upstream (nginx `return 200 "ok"`), under the same wrk load; results are
reported as ratios to nginx and HAProxy. A cache-hit case sets a Dispa edge against
nginx `proxy_cache` the same way, reported as a ratio of the two. See bench/README.md
and docs/benchmarks.md.

This file parses the arguments and runs the selected cases in order; the harness is
harness.py, the cases are cases_http1.py (nginx, HAProxy, Dispa throughput),
cases_cache.py (cache hits), cases_filters.py (an async filter, a request-body filter),
cases_protocols.py (HTTP/2, TLS) and cases_memory.py (idle connections), and report.py
prints and writes the results.

    .venv/bin/python bench/run.py                  # full run, 10 s per case
    .venv/bin/python bench/run.py --quick          # 3 s per case
    .venv/bin/python bench/run.py --only nginx,haproxy
    .venv/bin/python bench/run.py --write-docs     # also regenerate docs/benchmarks.md

Exit status: 0 when every selected case ran (whether or not targets were met), 1 when
something failed to run, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import cases_cache
import cases_filters
import cases_http1
import cases_memory
import cases_protocols
from harness import (
    REPO,
    RESULTS_FILE,
    BenchError,
    Ctx,
    Procs,
    cpu_model,
    ensure_tools,
    git_revision,
    log,
    raise_nofile,
    raise_on_signal,
    start_upstream,
    tool_version,
    write_docs,
    write_results,
)
from report import compute_summary, docs_section, print_report

ALL_CASES = (
    "dispa-minimal",
    "dispa-chain",
    "nginx",
    "haproxy",
    "nginx-cache",
    "dispa-edge-cache",
    *cases_filters.CASES,
    *cases_protocols.CASES,
    "memory",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark Dispa side by side with nginx and HAProxy.",
        epilog=f"Cases for --only: {', '.join(ALL_CASES)}.",
    )
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    p.add_argument("--quick", action="store_true", help="3 s per wrk run")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per case (2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--only", default="", help="comma list of cases to run (default: all)")
    p.add_argument("--idle-conns", type=int, default=10_000, help="idle connections (10000)")
    p.add_argument("--idle-deadline", type=float, default=180.0, help="s to open them (180)")
    p.add_argument("--settle", type=float, default=2.0, help="s to wait before reading RSS")
    p.add_argument("--ready-timeout", type=float, default=30.0, help="s to wait for a server")
    p.add_argument(
        "--noise-retries",
        type=int,
        default=2,
        help="extra runs of a case disturbed by other load on the benchmark cores (2)",
    )
    p.add_argument(
        "--dispa-cmd", default="", help="command for Dispa, before `run -c FILE` (or `edge`)"
    )
    p.add_argument("--write-docs", action="store_true", help="regenerate docs/benchmarks.md")
    p.add_argument("--keep-tmp", action="store_true", help="keep generated configs and logs")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3
    if args.duration < 1 or args.connections < 1 or args.threads < 1 or args.idle_conns < 1:
        p.error("--duration, --connections, --threads and --idle-conns must be positive")
    selected = [c.strip() for c in args.only.split(",") if c.strip()] or list(ALL_CASES)
    unknown = sorted(set(selected) - set(ALL_CASES))
    if unknown:
        p.error(f"unknown case(s) for --only: {', '.join(unknown)}; choose from {ALL_CASES}")
    args.selected = selected
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_on_signal)
    signal.signal(signal.SIGHUP, raise_on_signal)
    command = shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    sel = args.selected
    memory = "memory" in sel
    want_tools = ["nginx"]
    if any(c in sel for c in cases_http1.CASES + cases_cache.CASES + cases_filters.CASES):
        want_tools.append("wrk")
    if "haproxy" in sel or "haproxy-post4k" in sel or memory:
        want_tools.append("haproxy")
    want_tools += cases_protocols.tools_needed(sel)
    try:
        tools = ensure_tools(want_tools)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1

    nofile = raise_nofile(2 * args.idle_conns + 8192)
    if memory and nofile < args.idle_conns + 1024:
        log(
            f"FAILED: RLIMIT_NOFILE is {nofile}, the memory case needs "
            f"{args.idle_conns + 1024}; run as root or raise the hard limit"
        )
        return 1

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2:
        proxy_cpu, load_cpu = allowed[0], allowed[1]
        pinning = (
            f"proxy under test pinned to CPU {proxy_cpu}; "
            f"upstream nginx, wrk and idle clients pinned to CPU {load_cpu}"
        )
    else:
        proxy_cpu = load_cpu = None
        pinning = "only one CPU available: everything runs unpinned on it"
    log(pinning)
    log(f"RLIMIT_NOFILE {nofile} (harness and every server it starts)")

    results: dict[str, Any] = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": {"model": cpu_model(), "count": os.cpu_count(), "pinning": pinning},
        "versions": {
            "dispa": git_revision() or "working tree (no commit)",
            "nginx": tool_version([tools["nginx"], "-v"], r"nginx/(\S+)"),
            "haproxy": tool_version([tools["haproxy"], "-v"], r"HAProxy version (\S+)")
            if "haproxy" in tools
            else "-",
            "wrk": tool_version([tools["wrk"], "-v"], r"wrk (\S+)") if "wrk" in tools else "-",
            "python": platform.python_version(),
        },
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "idle_conns": args.idle_conns,
            "cases": sel,
        },
        "throughput": {},
        "cache": {},
        "filters": {},
        "memory": {},
        "failures": [],
    }
    failures: list[dict[str, str]] = results["failures"]
    interrupted = False
    tmp = Path(tempfile.mkdtemp(prefix="dispa-bench-"))
    procs = Procs(tmp)
    ctx = Ctx(args, tools, proxy_cpu, load_cpu, tmp, procs, nofile)
    try:
        log('\n== upstream: nginx return 200 "ok"')
        upstream = ctx.upstream = start_upstream(ctx)
        for kind in cases_http1.CASES + cases_cache.CASES:
            if kind not in sel:
                continue
            try:
                if kind in cases_cache.CASES:
                    results["cache"][kind] = cases_cache.bench_case(ctx, kind)
                else:
                    results["throughput"][kind] = cases_http1.bench_throughput(ctx, kind)
            except BenchError as exc:
                log(f"  FAILED: {exc}")
                failures.append({"case": kind, "error": str(exc)})
            if upstream.poll() is not None:
                raise BenchError(f"upstream nginx exited:\n{procs.tail(upstream)}")
        cases_filters.run_cases(ctx, results)
        cases_protocols.run_cases(ctx, results)
        if memory:
            for kind in cases_memory.SERVERS:
                try:
                    results["memory"][kind] = cases_memory.bench_memory(ctx, kind)
                except BenchError as exc:
                    log(f"  FAILED: {exc}")
                    failures.append({"case": f"memory/{kind}", "error": str(exc)})
    except BenchError as exc:
        log(f"  FAILED: {exc}")
        failures.append({"case": "harness", "error": str(exc)})
    except KeyboardInterrupt:
        interrupted = True
        log("\ninterrupted: stopping every process started")
    finally:
        procs.stop_all()
        if args.keep_tmp or failures:
            log(f"\nconfigs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results["summary"] = compute_summary(results)
    print_report(results)
    if interrupted:
        log(f"\ninterrupted: {RESULTS_FILE.relative_to(REPO)} left as it was")
        return 130
    write_results(results)
    if args.write_docs:
        if failures:
            log("not updating docs/benchmarks.md: the run had failures")
        else:
            write_docs(docs_section(results))
    if failures:
        names = ", ".join(f["case"] for f in failures)
        log(f"FAILED to run: {names}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
