"""The protocol cases of `make bench`: HTTP/2 and TLS handshakes, Dispa against nginx.

bench/harness.py runs them in the same invocation as the other case families, with the proxy under
test on the same pinned core, the load on the other one, and the same upstream nginx
behind; each Dispa figure is a ratio to nginx measured in the same harness.

- ``nginx-h2`` / ``dispa-h2``: requests per second over HTTP/2 in plaintext with prior
  knowledge (h2c), ``h2load -t1 -c16 -m4``: 16 connections with 4 streams each in
  flight, so 64 requests at a time as in the HTTP/1.1 cases (wrk -c64). Both proxies
  speak HTTP/1.1 keep-alive to the upstream and keep up to 64 idle connections to it:
  with 640 requests in flight (-c64 -m10) both open and close upstream connections all
  the time, and the figure measures that instead (Dispa then spent some 1.7x more CPU
  per request).
- ``nginx-tls`` / ``dispa-tls``: full TLS handshakes per second, one new connection per
  request. The client is ``openssl s_time -new`` (16 processes at once, each one
  connection at a time, each connection a full handshake, then ``GET /`` over HTTP/1.0
  and close). wrk and h2load were rejected for this: with ``Connection: close`` they do
  reconnect per request, but resume the TLS session on almost every reconnect (nginx's
  ``$ssl_session_reused`` said so for 396 of 400), which measures resumptions instead.
  Both servers get the same ECDSA P-256 certificate and negotiate TLS 1.3.
"""

from __future__ import annotations

import http.client
import os
import re
import resource
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import harness

H2_CASES = ("nginx-h2", "dispa-h2")
TLS_CASES = ("nginx-tls", "dispa-tls")
CASES = H2_CASES + TLS_CASES

TARGET_H2 = 0.4
H2_CLIENTS = 16  # connections
H2_STREAMS = 4  # streams in flight on each (both proxies allow 100): 64 in all, as wrk -c64
TLS_CLIENTS = 16  # s_time processes, each one connection at a time
# s_time does not look at what it reads; a full "HTTP/1.x 200" answer is longer than this.
TLS_MIN_BYTES = 40

HEADER = ["case", "measure", "per second", "x nginx", "proxy CPU", "other load"]
TITLE = (
    "HTTP/2 and TLS (proxy pinned as above; `h2load -t1 -c16 -m4` over h2c, and full TLS "
    "1.3 handshakes with `openssl s_time -new` x16, one new connection per request):"
)


def tools_needed(selected: list[str]) -> list[str]:
    tools = []
    if any(case in selected for case in H2_CASES):
        tools.append("h2load")
    if any(case in selected for case in TLS_CASES):
        tools.append("openssl")
    return tools


def run_cases(ctx: Any, results: dict[str, Any]) -> None:
    """Measure every selected protocol case into results["protocols"]; a case that
    cannot run is recorded in results["failures"] and the others go on."""
    bucket = results.setdefault("protocols", {})
    selected = [case for case in CASES if case in ctx.args.selected]
    if not selected:
        return
    versions = results["versions"]
    if "h2load" in ctx.tools:
        versions["h2load"] = harness.tool_version(
            [ctx.tools["h2load"], "--version"], r"nghttp2/(\S+)"
        )
    if "openssl" in ctx.tools:
        versions["openssl"] = harness.tool_version(
            [ctx.tools["openssl"], "version"], r"OpenSSL (\S+)"
        )
    for kind in selected:
        try:
            bucket[kind] = bench_case(ctx, kind)
        except harness.BenchError as exc:
            harness.log(f"  FAILED: {exc}")
            results["failures"].append({"case": kind, "error": str(exc)})
        if ctx.upstream is not None and ctx.upstream.poll() is not None:
            raise harness.BenchError(f"upstream nginx exited:\n{ctx.procs.tail(ctx.upstream)}")


# --------------------------------------------------------------------------- one case


def bench_case(ctx: Any, kind: str) -> dict[str, Any]:
    """Warm up, then measure; a run disturbed by other load on the benchmark cores is
    repeated (--noise-retries times at most) and the least disturbed run is kept."""
    a = ctx.args
    what = "HTTP/2 (h2c) requests" if kind in H2_CASES else "full TLS handshakes"
    harness.log(f"\n== {kind}: {what}")
    proc, port = start_case(ctx, kind)
    load = h2load if kind in H2_CASES else tls_handshakes
    try:
        if a.warmup > 0:
            harness.log(f"  warm-up {a.warmup} s")
            load(ctx, port, a.warmup)
        best: dict[str, Any] | None = None
        for attempt in range(1 + a.noise_retries):
            res = measure(ctx, kind, proc, lambda: load(ctx, port, a.duration))
            res["attempts"] = attempt + 1
            if best is None or res["other_cpu_pct"] < best["other_cpu_pct"]:
                best = res
            if res["other_cpu_pct"] <= harness.OTHER_LOAD_WARN_PCT:
                break
            harness.log(
                f"  other processes used {res['other_cpu_pct']:.0f}% of a CPU on the "
                "benchmark cores" + (": measuring again" if attempt < a.noise_retries else "")
            )
        assert best is not None
        best["noisy"] = best["other_cpu_pct"] > harness.OTHER_LOAD_WARN_PCT
        return best
    finally:
        ctx.procs.stop(proc)


def start_case(ctx: Any, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the proxy under test on its core and check that it answers as it should."""
    port = ctx.port(kind)
    workdir = ctx.tmp / kind
    workdir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {"PORT": port, "UPSTREAM_PORT": ctx.port("upstream")}
    if kind in TLS_CASES:
        cert, key = certificate(ctx)
        values.update(CERT=cert, KEY=key)
    admin_port = None
    cwd = None
    if kind.startswith("nginx"):
        (workdir / "tmp").mkdir(exist_ok=True)
        conf = harness.render(
            f"{kind}.conf",
            workdir / "nginx.conf",
            PREFIX=workdir,
            NOFILE=ctx.nofile,
            WORKER_CONNECTIONS=ctx.args.idle_conns + 4096,
            **values,
        )
        argv = [ctx.tools["nginx"], "-p", str(workdir), "-c", str(conf)]
        argv += ["-e", str(workdir / "error.log"), "-g", "daemon off;"]
    else:
        admin_port = ctx.port(f"{kind}-admin")
        # A plaintext Dispa listener tells h2c from HTTP/1.1 by itself: case (a) as it is.
        template = "dispa-minimal.yaml" if kind == "dispa-h2" else "dispa-tls.yaml"
        config = harness.render(template, workdir / "dispa.yaml", ADMIN_PORT=admin_port, **values)
        argv = harness.dispa_command(ctx, config)
        cwd = harness.REPO
    proc = ctx.procs.start(kind, argv, cpu=ctx.proxy_cpu, nofile=ctx.nofile, cwd=cwd)
    try:
        harness.wait_ready(ctx, kind, proc, port, admin_port)
        if kind in H2_CASES:
            check_h2(ctx, kind, proc, port)
        else:
            check_tls(ctx, kind, proc, port)
    except BaseException:
        ctx.procs.stop(proc)
        raise
    return proc, port


def certificate(ctx: Any) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for both TLS servers, made once per harness."""
    directory = ctx.tmp / "tls"
    cert, key = directory / "cert.pem", directory / "key.pem"
    if cert.exists():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True)
    argv = [ctx.tools["openssl"], "req", "-x509", "-newkey", "ec"]
    argv += ["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    argv += ["-subj", "/CN=bench.test", "-keyout", str(key), "-out", str(cert)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise harness.BenchError("openssl took over 60 s to make a certificate") from exc
    if out.returncode != 0:
        raise harness.BenchError(f"openssl could not make a certificate:\n{out.stderr.strip()}")
    return cert, key


def measure(ctx: Any, kind: str, proc: subprocess.Popen[bytes], load) -> dict[str, Any]:
    """One measured load run, with the CPU accounting of cases_http1.measure_once: the proxy's
    share of its core, and the CPU other processes took on the two benchmark cores."""
    pids = harness.proc_tree(proc.pid)
    up_pids = harness.proc_tree(ctx.upstream.pid) if ctx.upstream else []
    cpus = set(os.sched_getaffinity(0)) if ctx.proxy_cpu is None else {ctx.proxy_cpu, ctx.load_cpu}
    p0, u0, b0 = harness.cpu_ticks(pids), harness.cpu_ticks(up_pids), harness.busy_ticks(cpus)
    ours0 = harness.rusage_seconds(resource.RUSAGE_CHILDREN) + harness.rusage_seconds(
        resource.RUSAGE_SELF
    )
    t0 = time.monotonic()
    res = load()
    wall = time.monotonic() - t0
    proxy_s = (harness.cpu_ticks(pids) - p0) / harness.CLK_TCK
    upstream_s = (harness.cpu_ticks(up_pids) - u0) / harness.CLK_TCK
    busy_s = (harness.busy_ticks(cpus) - b0) / harness.CLK_TCK
    ours_s = harness.rusage_seconds(resource.RUSAGE_CHILDREN) + harness.rusage_seconds(
        resource.RUSAGE_SELF
    )
    ours_s += proxy_s + upstream_s - ours0  # the load processes have exited: in CHILDREN
    res["proxy_cpu_pct"] = round(100.0 * proxy_s / wall, 1)
    res["upstream_cpu_pct"] = round(100.0 * upstream_s / wall, 1)
    res["other_cpu_pct"] = round(max(0.0, 100.0 * (busy_s - ours_s) / wall), 1)
    if proc.poll() is not None:
        raise harness.BenchError(f"{kind} exited during the run:\n{ctx.procs.tail(proc)}")
    harness.log(
        f"  {res['rate']:,.0f} {res['unit']}/s, proxy CPU {res['proxy_cpu_pct']:.0f}%, "
        f"upstream CPU {res['upstream_cpu_pct']:.0f}%, other load {res['other_cpu_pct']:.0f}%"
    )
    return res


# --------------------------------------------------------------------------- HTTP/2


def check_h2(ctx: Any, kind: str, proc: subprocess.Popen[bytes], port: int) -> None:
    """A few requests over h2c must all come back 200, spoken as HTTP/2."""
    argv = [ctx.tools["h2load"], "-n", "20", "-c", "1", "-m", "4", f"http://127.0.0.1:{port}/"]
    text = _run_tool(ctx, f"h2load-check-{kind}", argv, timeout=30)
    res = parse_h2load(text)
    if res["protocol"] != "h2c" or res["succeeded"] != 20 or res["status_2xx"] != 20:
        raise harness.BenchError(
            f"{kind}: 20 GET / over h2c did not all answer 200 (protocol {res['protocol']}, "
            f"{res['succeeded']} succeeded, {res['status_2xx']} 2xx):\n{text}\n"
            f"{ctx.procs.tail(proc)}"
        )


def h2load(ctx: Any, port: int, duration: int) -> dict[str, Any]:
    argv = [ctx.tools["h2load"], "-t1", f"-c{H2_CLIENTS}", f"-m{H2_STREAMS}", f"-D{duration}"]
    argv.append(f"http://127.0.0.1:{port}/")
    harness.log(f"  h2load -t1 -c{H2_CLIENTS} -m{H2_STREAMS} -D{duration}")
    res = parse_h2load(_run_tool(ctx, f"h2load-{port}", argv, timeout=duration + 30))
    if not res["succeeded"]:
        raise harness.BenchError("h2load completed no requests")
    bad = res["status_other"] + res["errored"]
    if bad:
        raise harness.BenchError(
            f"{bad} of {res['total']} h2load requests were errors or not 2xx/3xx, so the "
            "req/s figure is not a proxying figure"
        )
    # Requests still in flight when the time is up count as failed: no more than that.
    if res["failed"] > H2_CLIENTS * H2_STREAMS:
        raise harness.BenchError(f"h2load: {res['failed']} of {res['total']} requests failed")
    res["rate"] = res["rps"]
    res["unit"] = "req"
    return res


def parse_h2load(text: str) -> dict[str, Any]:
    m = re.search(r"finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req/s", text)
    if not m:
        raise harness.BenchError("could not find the req/s line in h2load output:\n" + text)
    res: dict[str, Any] = {
        "seconds": round(harness._to_ms(m.group(1), m.group(2)) / 1000, 3),
        "rps": float(m.group(3)),
    }
    m = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored",
        text,
    )
    if not m:
        raise harness.BenchError("could not find the request counts in h2load output:\n" + text)
    res.update(
        zip(("total", "done", "succeeded", "failed", "errored"), map(int, m.groups()), strict=True)
    )
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not m:
        raise harness.BenchError("could not find the status codes in h2load output:\n" + text)
    res["status_2xx"] = int(m.group(1))
    res["status_other"] = int(m.group(3)) + int(m.group(4))
    m = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", text)
    res["mean_ms"] = round(harness._to_ms(m.group(1), m.group(2)), 4) if m else None
    m = re.search(r"Application protocol: (\S+)", text)
    res["protocol"] = m.group(1) if m else None
    return res


# --------------------------------------------------------------------------- TLS


def check_tls(ctx: Any, kind: str, proc: subprocess.Popen[bytes], port: int) -> None:
    """GET / over TLS must answer the upstream's 200 ok, over TLS 1.3."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # our own self-signed certificate
    deadline = time.monotonic() + 5.0
    problem = "no attempt"
    while time.monotonic() < deadline:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2.0, context=context)
        try:
            conn.request("GET", "/", headers={"User-Agent": "dispa-bench"})
            response = conn.getresponse()
            body = response.read()
            version = conn.sock.version() if conn.sock is not None else None
        except (OSError, http.client.HTTPException) as exc:
            problem = repr(exc)
        else:
            if response.status == 200 and body == b"ok" and version == "TLSv1.3":
                return
            problem = f"status {response.status}, body {body[:80]!r}, {version}"
        finally:
            conn.close()
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise harness.BenchError(
        f"{kind}: GET / over TLS 1.3 did not return 200 'ok' ({problem}); "
        f"last log lines:\n{ctx.procs.tail(proc)}"
    )


def tls_handshakes(ctx: Any, port: int, duration: int) -> dict[str, Any]:
    argv = [ctx.tools["openssl"], "s_time", "-connect", f"127.0.0.1:{port}", "-new"]
    argv += ["-www", "/", "-time", str(duration)]
    harness.log(f"  {TLS_CLIENTS} x openssl s_time -new -www / -time {duration}")
    clients = [
        ctx.procs.start(f"s_time-{port}-{i}", argv, cpu=ctx.load_cpu, pipes=True)
        for i in range(TLS_CLIENTS)
    ]
    outputs = []
    try:
        for client in clients:
            try:
                out, _ = client.communicate(timeout=duration + 30)
            except subprocess.TimeoutExpired as exc:
                raise harness.BenchError(
                    f"openssl s_time did not finish in {duration + 30} s"
                ) from exc
            outputs.append((client.returncode, out.decode(errors="replace")))
    finally:
        for client in clients:
            ctx.procs.stop(client)
    connections = 0
    for returncode, text in outputs:
        m = re.search(r"(\d+) connections in [\d.]+ real seconds, (\d+) bytes read per", text)
        if returncode != 0 or not m:
            raise harness.BenchError(f"openssl s_time exited with {returncode}:\n{text[-2000:]}")
        if int(m.group(1)) and int(m.group(2)) < TLS_MIN_BYTES:
            raise harness.BenchError(
                f"openssl s_time read {m.group(2)} bytes per connection: no HTTP answer"
            )
        connections += int(m.group(1))
    if not connections:
        raise harness.BenchError("openssl s_time completed no connection")
    # Each client stops at its first connection past `duration` seconds of its own clock.
    return {
        "handshakes": connections,
        "rate": round(connections / duration, 1),
        "unit": "handshakes",
    }


def _run_tool(ctx: Any, name: str, argv: list[str], timeout: float) -> str:
    proc = ctx.procs.start(name, argv, cpu=ctx.load_cpu, pipes=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise harness.BenchError(f"{argv[0]} did not finish within {timeout:.0f} s") from exc
    finally:
        ctx.procs.stop(proc)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise harness.BenchError(f"{Path(argv[0]).name} exited with {proc.returncode}:\n{text}")
    return text


# --------------------------------------------------------------------------- report


def summary_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios to nginx, set on each case, and the target lines for the summary."""
    bucket = results.get("protocols", {})
    for family in (H2_CASES, TLS_CASES):
        reference = bucket.get(family[0], {}).get("rate")
        for kind in family:
            res = bucket.get(kind)
            if res is not None:
                res["x_nginx"] = round(res["rate"] / reference, 3) if reference else None

    def ratio(kind: str) -> tuple[float | None, str]:
        value = bucket.get(kind, {}).get("x_nginx")
        if value is None:
            return None, "-"
        noisy = any(bucket[k]["noisy"] for k in (kind, f"nginx-{kind.split('-', 1)[1]}"))
        return value, f"{value:.2f}x" + (" (noisy run)" if noisy else "")

    h2, h2_shown = ratio("dispa-h2")
    tls, tls_shown = ratio("dispa-tls")
    return [
        {
            "target": f"(h2) Dispa HTTP/2 (h2c) >= {TARGET_H2}x nginx req/s",
            "value": h2,
            "shown": h2_shown,
            "status": "NOT MEASURED" if h2 is None else ("PASS" if h2 >= TARGET_H2 else "MISS"),
        },
        {
            "target": "TLS: Dispa full handshakes/s vs nginx",
            "value": tls,
            "shown": tls_shown,
            "status": "NOT MEASURED" if tls is None else "INFO",
        },
    ]


def rows(results: dict[str, Any]) -> list[list[str]]:
    bucket = results.get("protocols", {})
    table = []
    for kind in CASES:
        res = bucket.get(kind)
        if res is None:
            continue
        measured = "requests, h2c" if kind in H2_CASES else "full TLS handshakes"
        table.append(
            [
                kind,
                measured,
                f"{res['rate']:,.0f}",
                harness.fmt(res.get("x_nginx"), ".2f"),
                harness.fmt(res.get("proxy_cpu_pct"), ".0f") + "%",
                harness.fmt(res.get("other_cpu_pct"), ".0f") + ("% *" if res.get("noisy") else "%"),
            ]
        )
    return table


def _noisy_note(results: dict[str, Any]) -> list[str]:
    """The note for rows marked `*`, unless harness.py prints it for its own rows anyway."""
    noisy = any(res["noisy"] for res in results.get("protocols", {}).values())
    return [harness.NOISY_NOTE] if noisy and not harness.any_noisy(results) else []


def report_text(results: dict[str, Any]) -> str:
    table = rows(results)
    if not table:
        return ""
    return "\n".join(["", TITLE, harness.text_table(HEADER, table), *_noisy_note(results)])


def report_markdown(results: dict[str, Any]) -> list[str]:
    table = rows(results)
    if not table:
        return []
    versions = results["versions"]
    tools = f"h2load {versions.get('h2load', '-')}, OpenSSL {versions.get('openssl', '-')}"
    lines = [TITLE, "", harness.md_table(HEADER, table), "", f"Load tools: {tools}.", ""]
    note = _noisy_note(results)
    return [*lines, *note, ""] if note else lines
