"""The summary, the printed report and the docs section of one `make bench` run: each
case family's table and targets, in a fixed order (HTTP/1.1 throughput, cache hits,
filters, HTTP/2 and TLS, memory)."""

from __future__ import annotations

from typing import Any

import cases_cache
import cases_filters
import cases_http1
import cases_memory
import cases_protocols
from harness import DOCS_MARKER, NOISY_NOTE, any_noisy, log, md_table, text_table


def compute_summary(results: dict[str, Any]) -> dict[str, Any]:
    throughput = cases_http1.summary_targets(results)
    memory = cases_memory.summary_target(results)
    cache_ratio, cache_hit = cases_cache.summary_target(results)
    return {
        "cache_hit_ratio": cache_ratio,
        "targets": [
            *throughput,
            memory,
            cache_hit,
            *cases_filters.summary_targets(results),
            *cases_protocols.summary_targets(results),
        ],
    }


def print_report(results: dict[str, Any]) -> None:
    log("\n" + "=" * 72)
    log(f"Dispa benchmark  {results['date']}  ({results['cpu']['model']})")
    log(results["cpu"]["pinning"])
    rows = cases_http1.rows(results)
    if rows:
        log("")
        log(text_table(cases_http1.HEADER, rows))
    crows = cases_cache.rows(results)
    if crows:
        log("\n" + cases_cache.TITLE)
        log(text_table(cases_cache.HEADER, crows))
        ratio = results["summary"]["cache_hit_ratio"]
        if ratio is not None:
            log(f"dispa-edge-cache / nginx-cache: {ratio:.2f}x req/s")
    frows = cases_filters.rows(results)
    if frows:
        log("\n" + cases_filters.TITLE)
        log(text_table(cases_filters.HEADER, frows))
    if cases_protocols.report_text(results):
        log(cases_protocols.report_text(results))
    if any_noisy(results):
        log(NOISY_NOTE)
    mrows = cases_memory.rows(results)
    if mrows:
        log(f"\nRSS with {results['settings']['idle_conns']:,} idle keep-alive connections:")
        log(text_table(cases_memory.HEADER, mrows))
    log("\nTargets:")
    for t in results["summary"]["targets"]:
        log(f"  {t['status']:<12} {t['target']}: {t['shown']}")
    for f in results["failures"]:
        log(f"\nFAILED {f['case']}: {f['error']}")


def docs_section(results: dict[str, Any]) -> str:
    s = results["settings"]
    v = results["versions"]
    lines = [
        DOCS_MARKER,
        "",
        "## Results",
        "",
        "Written by `make bench` with `--write-docs`; do not edit by hand below the marker.",
        "",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}",
        f"- CPU: {results['cpu']['model']} ({results['cpu']['count']} CPUs); "
        f"{results['cpu']['pinning']}",
        f"- Load: after a {s['warmup']} s warm-up, `wrk -t{s['threads']} -c{s['connections']} "
        f'-d{s["duration"]}s --latency`; upstream nginx `return 200 "ok"`',
        f"- Versions: Dispa {v['dispa']}, nginx {v['nginx']}, HAProxy {v['haproxy']}, "
        f"wrk {v['wrk']}, Python {v['python']}",
        "",
        "Throughput (ratios are the result; req/s and latency only hold for this run):",
        "",
        md_table(cases_http1.HEADER, cases_http1.rows(results)),
        "",
    ]
    crows = cases_cache.rows(results)
    if crows:
        lines += [cases_cache.TITLE, "", md_table(cases_cache.HEADER, crows), ""]
        ratio = results["summary"]["cache_hit_ratio"]
        if ratio is not None:
            lines += [
                f"Cache hit ratio, `dispa-edge-cache` / `nginx-cache` req/s: **{ratio:.2f}x** "
                f"(`{results['command']}`).",
                "",
            ]
    frows = cases_filters.rows(results)
    if frows:
        lines += [cases_filters.TITLE, "", md_table(cases_filters.HEADER, frows), ""]
    lines += cases_protocols.report_markdown(results)
    if any_noisy(results):
        lines += [NOISY_NOTE, ""]
    mrows = cases_memory.rows(results)
    if mrows:
        lines += [
            f"Memory with {s['idle_conns']:,} idle keep-alive connections "
            "(sum over the server's process tree; peak is VmHWM):",
            "",
            md_table(cases_memory.HEADER, mrows),
            "",
        ]
    lines += ["Targets:", ""]
    lines += [
        f"- {t['status']}: {t['target']}: {t['shown']}" for t in results["summary"]["targets"]
    ]
    return "\n".join(lines) + "\n"
