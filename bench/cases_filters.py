"""Filter pipeline cases (issue 16): what an asynchronous filter and a request-body
filter cost, measured like the HTTP/1.1 cases (same pinned core, upstream and wrk load).

- ``dispa-fault-delay0``: case (a) plus one asynchronous filter that answers at once, a
  ``fault`` filter with ``delay: 0s``: each request is held for one turn of the event loop
  (its Pending is resolved by a loop callback) and then goes on. Same ``GET /`` as case
  (a), so its ratios are to ``nginx``, ``haproxy`` and ``dispa-minimal`` of the same run.
- ``nginx-post4k``, ``haproxy-post4k``, ``dispa-post4k``: the ``nginx``, ``haproxy`` and
  ``dispa-minimal`` configs proxying a 4 KiB POST (wrk with a Lua script): the baselines.
  nginx and HAProxy do not rewrite the body: they are a plain 4 KiB POST proxied.
- ``dispa-body-replace``: case (a) plus ``body_replace`` with one request rule whose find
  string occurs in every 64-byte line of the same POST body: the body is buffered whole,
  rewritten (64 replacements, 4,096 bytes in, 4,160 out) and sent with a new length. Its
  ratio to ``dispa-post4k`` is the filter's own cost.

Every case answers as the others before the load: ``GET /`` and the POST must return the
upstream's ``200 ok``; the fault filter is first started with a long delay that a GET must
wait for, and the body filter must refuse a body over its ``max_body`` with 413, so that
a case whose filter is not on the route fails instead of measuring case (a).
"""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Callable
from typing import Any

import cases_http1
from harness import (
    REPO,
    BenchError,
    Ctx,
    dispa_command,
    fmt,
    http_get,
    log,
    render,
    sanity_check,
    start_pinned,
)

FAULT_CASE = "dispa-fault-delay0"
POST_BASELINES = {"nginx-post4k": "nginx", "haproxy-post4k": "haproxy"}  # case -> config
POST_DISPA = "dispa-post4k"
BODY_CASE = "dispa-body-replace"
CASES = (FAULT_CASE, *POST_BASELINES, POST_DISPA, BODY_CASE)
POST_CASES = (*POST_BASELINES, POST_DISPA, BODY_CASE)

# The POST body: 64 lines of 64 bytes, each with one occurrence of FIND.
FIND = "http://old.example.com/"
REPLACE = "https://www.example.com/"
POST_BODY = b"".join(
    f"item {i:02d}: see {FIND} for more".ljust(63, ".").encode() + b"\n" for i in range(64)
)
MAX_BODY = 8 * 1024  # the body filter's buffer limit: above the POST, so it never refuses it
# The fault filter's delay in the check run: long enough to tell apart from no filter.
CHECK_DELAY = 0.4

HEADER = [
    "case",
    "load",
    "req/s",
    "x nginx",
    "x haproxy",
    "x no filter",
    "p50 ms",
    "p99 ms",
    "proxy CPU",
    "other load",
]
TITLE = (
    "Filter pipeline (proxy pinned as above, same wrk load; `dispa-fault-delay0` is `GET /` "
    "as case (a), its ratios to `nginx`, `haproxy` and, as `x no filter`, `dispa-minimal`; "
    "the POST cases send a 4 KiB body with a wrk Lua script, their ratios are to "
    "`nginx-post4k` and `haproxy-post4k`, a plain POST proxied (they do not rewrite the "
    "body), and `dispa-body-replace`'s `x no filter` is to `dispa-post4k`):"
)

# Where each case's ratios come from: (bucket, case) for x nginx, x haproxy, x no filter.
REFERENCES = {
    FAULT_CASE: (
        ("throughput", "nginx"),
        ("throughput", "haproxy"),
        ("throughput", "dispa-minimal"),
    ),
    "nginx-post4k": (("filters", "nginx-post4k"), ("filters", "haproxy-post4k"), None),
    "haproxy-post4k": (("filters", "nginx-post4k"), ("filters", "haproxy-post4k"), None),
    POST_DISPA: (("filters", "nginx-post4k"), ("filters", "haproxy-post4k"), None),
    BODY_CASE: (
        ("filters", "nginx-post4k"),
        ("filters", "haproxy-post4k"),
        ("filters", POST_DISPA),
    ),
}


def lua_script() -> str:
    """The wrk script of the POST cases. A Lua long string keeps the body byte for byte
    (the newline right after its opening bracket is not part of it)."""
    body = POST_BODY.decode()  # ASCII, without "]==]" (tests/unit/test_bench_filters.py)
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "text/plain"\n'
        f"wrk.body = [==[\n{body}]==]\n"
    )


def run_cases(ctx: Ctx, results: dict[str, Any]) -> None:
    """Measure every selected filter case into results["filters"]; a case that cannot run
    is recorded in results["failures"] and the others go on."""
    bucket = results.setdefault("filters", {})
    selected = [kind for kind in CASES if kind in ctx.args.selected]
    script = ctx.tmp / "post4k.lua"
    if any(kind in POST_CASES for kind in selected):
        script.write_text(lua_script())
    for kind in selected:
        try:
            if kind == FAULT_CASE:
                check_fault_is_on(ctx)
                bucket[kind] = cases_http1.bench_throughput(ctx, kind, start_proxy)
            else:
                what = "throughput, 4 KiB POST"
                bucket[kind] = cases_http1.bench_throughput(
                    ctx, kind, start_proxy, what=what, script=script
                )
        except BenchError as exc:
            log(f"  FAILED: {exc}")
            results["failures"].append({"case": kind, "error": str(exc)})
        if ctx.upstream is not None and ctx.upstream.poll() is not None:
            raise BenchError(f"upstream nginx exited:\n{ctx.procs.tail(ctx.upstream)}")


def start_proxy(ctx: Ctx, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the proxy of a filter case, pinned, and check that it answers as its case
    expects (see the module's docstring)."""
    if kind in POST_BASELINES:
        proc, port = cases_http1.start_proxy(ctx, POST_BASELINES[kind])
        try:
            post_check(ctx, kind, proc, port, 200)
        except BaseException:
            ctx.procs.stop(proc)
            raise
        return proc, port
    if kind == FAULT_CASE:
        return start_dispa(ctx, kind, kind, "dispa-fault.yaml", get_check, DELAY="0s")
    if kind == POST_DISPA:
        return start_dispa(ctx, kind, kind, "dispa-minimal.yaml", post_ok_check)
    if kind == BODY_CASE:
        values = {"FIND": FIND, "REPLACE": REPLACE, "MAX_BODY": MAX_BODY}
        return start_dispa(ctx, kind, kind, "dispa-body-replace.yaml", body_check, **values)
    raise BenchError(f"unknown filter case {kind}")


Check = Callable[[Ctx, str, subprocess.Popen[bytes], int], None]


def start_dispa(
    ctx: Ctx, kind: str, name: str, template: str, check: Check, **values: Any
) -> tuple[subprocess.Popen[bytes], int]:
    port = ctx.port(kind)
    admin_port = ctx.port(f"{kind}-admin")
    cfg = render(
        template,
        ctx.tmp / name / "dispa.yaml",
        PORT=port,
        UPSTREAM_PORT=ctx.port("upstream"),
        ADMIN_PORT=admin_port,
        **values,
    )

    def checked(proc: subprocess.Popen[bytes]) -> None:
        check(ctx, name, proc, port)

    return start_pinned(ctx, name, dispa_command(ctx, cfg), port, admin_port, checked, REPO), port


def get_check(ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    sanity_check(ctx, name, proc, port)


def post_ok_check(ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    sanity_check(ctx, name, proc, port)
    post_check(ctx, name, proc, port, 200)


def body_check(ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    """The POST goes through, and a body over max_body is refused: the filter buffers."""
    post_ok_check(ctx, name, proc, port)
    post_check(ctx, name, proc, port, 413, POST_BODY * (MAX_BODY // len(POST_BODY) + 1))


def check_fault_is_on(ctx: Ctx) -> None:
    """Run the fault case's config once with a CHECK_DELAY delay: a GET must wait for it.
    With `delay: 0s` nothing shows from outside that the filter runs, so this is what
    tells the measured case from case (a)."""
    log(f"\n== {FAULT_CASE}: check that the fault filter is on ({CHECK_DELAY} s delay)")
    name = f"{FAULT_CASE}-check"
    proc, _ = start_dispa(
        ctx, FAULT_CASE, name, "dispa-fault.yaml", slow_get_check, DELAY=f"{CHECK_DELAY}s"
    )
    ctx.procs.stop(proc)


def slow_get_check(ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    sanity_check(ctx, name, proc, port)  # the first answer, whatever it took
    started = time.monotonic()
    try:
        status, _, body = http_get(port, "/", timeout=CHECK_DELAY + 5.0)
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"{name}: GET / failed: {exc!r}") from exc
    took = time.monotonic() - started
    if status != 200 or body != b"ok" or took < CHECK_DELAY:
        raise BenchError(
            f"{name}: GET / answered {status} {body[:80]!r} after {took:.3f} s; with the "
            f"fault filter on the route it waits {CHECK_DELAY} s (is the filter on?)"
        )
    log(f"  GET / waited {took:.3f} s for the fault filter's {CHECK_DELAY} s delay")


def post_check(
    ctx: Ctx,
    name: str,
    proc: subprocess.Popen[bytes],
    port: int,
    want: int,
    body: bytes = POST_BODY,
) -> None:
    """A POST of `body` through the proxy answers `want` (200: the upstream's `ok`)."""
    try:
        status, answer = http_post(port, body)
    except (OSError, http.client.HTTPException) as exc:
        status, answer = None, repr(exc).encode()
    if status == want and (want != 200 or answer == b"ok"):
        log(f"  POST / with {len(body):,} bytes: {status}")
        return
    raise BenchError(
        f"{name}: POST / with {len(body):,} bytes answered {status} {answer[:80]!r}, "
        f"expected {want}; last log lines:\n{ctx.procs.tail(proc)}"
    )


def http_post(port: int, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"User-Agent": "dispa-bench", "Content-Type": "text/plain"}
        conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def reference_rps(results: dict[str, Any], ref: tuple[str, str] | None) -> float | None:
    if ref is None:
        return None
    return results.get(ref[0], {}).get(ref[1], {}).get("rps")


def summary_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios, set on each case, and two informational lines (the issue sets no
    number for these cases)."""
    bucket = results.get("filters", {})
    for kind, res in bucket.items():
        for key, ref in zip(("x_nginx", "x_haproxy", "x_no_filter"), REFERENCES[kind], strict=True):
            base = reference_rps(results, ref)
            res[key] = round(res["rps"] / base, 3) if base else None

    def line(desc: str, kind: str, first: str, second: str) -> dict[str, Any]:
        res = bucket.get(kind, {})
        a, b = res.get("x_nginx"), res.get("x_no_filter")
        refs = [r for r in REFERENCES[kind] if r is not None]
        noisy = res.get("noisy") or any(
            results.get(bucket_name, {}).get(case, {}).get("noisy") for bucket_name, case in refs
        )
        shown = f"{fmt(a, '.2f')}x {first}, {fmt(b, '.2f')}x {second}" if res else "-"
        return {
            "target": desc,
            "value": a,
            "shown": shown + (" (noisy run)" if res and noisy else ""),
            "status": "NOT MEASURED" if a is None and b is None else "INFO",
        }

    return [
        line(
            "one async filter answering at once (fault, delay 0s), GET /",
            FAULT_CASE,
            "nginx",
            "dispa-minimal",
        ),
        line(
            "request-body filter (body_replace) on a 4 KiB POST",
            BODY_CASE,
            "nginx-post4k (plain POST, no rewrite)",
            "dispa-post4k",
        ),
    ]


def rows(results: dict[str, Any]) -> list[list[str]]:
    table = []
    for kind in CASES:
        res = results.get("filters", {}).get(kind)
        if res is None:
            continue
        table.append(
            [
                kind,
                "POST 4 KiB" if kind in POST_CASES else "GET /",
                f"{res['rps']:,.0f}",
                fmt(res.get("x_nginx"), ".2f"),
                fmt(res.get("x_haproxy"), ".2f"),
                fmt(res.get("x_no_filter"), ".2f"),
                f"{res['p50_ms']:.3f}",
                f"{res['p99_ms']:.3f}",
                fmt(res.get("proxy_cpu_pct"), ".0f") + "%",
                fmt(res.get("other_cpu_pct"), ".0f") + ("% *" if res.get("noisy") else "%"),
            ]
        )
    return table
