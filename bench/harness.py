"""The benchmark harness every case family shares (`make bench`; bench/run.py drives it).

Processes (each in its own process group, pinned, stopped on any exit), the system and
CPU accounting (/proc), the upstream nginx every case proxies to, Dispa's command line,
readiness and sanity checks, the wrk runner and its parser, the results file and the
docs writer. Stdlib only; the case families (cases_*.py) import this module and never
each other's harness code, so nothing here imports a case.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CONF_DIR = BENCH_DIR / "conf"
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_MARKER = "<!-- results -->"

OTHER_LOAD_WARN_PCT = 10.0  # CPU % used by foreign processes above which a run is flagged

# The upstream's cacheable document for the cache-hit cases (cases_cache.py): it serves
# CACHE_PATH (conf/nginx-upstream-cached.conf, spliced into its server block) with
# `Cache-Control: public, max-age=3600`.
CACHE_PATH = "/cached"
CACHE_BODY = b"cached ok"

# The Debian package of each tool a case runs, installed when missing and run as root.
APT_PACKAGES = {
    "nginx": "nginx-light",
    "haproxy": "haproxy",
    "wrk": "wrk",
    "h2load": "nghttp2-client",
    "openssl": "openssl",
}
EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin")


CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A case (or the harness) could not run; the message names what failed."""


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- processes


class Procs:
    """Every process the harness starts, each in its own session (process group), so
    that stop() and stop_all() take down the whole tree (nginx workers included)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.live: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self.names: dict[int, str] = {}
        self.taskset = shutil.which("taskset")

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        cpu: int | None = None,
        nofile: int | None = None,
        pipes: bool = False,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        prefix: list[str] = []
        if cpu is not None and self.taskset:
            prefix = [self.taskset, "-c", str(cpu)]
        affinity = cpu if cpu is not None and not self.taskset else None

        def preexec() -> None:  # runs in the child, before exec
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if affinity is not None:
                os.sched_setaffinity(0, {affinity})

        log_path = self.tmp / f"{name}.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                prefix + argv,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log_file,
                stderr=log_file if pipes else subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec,
            )
        self.live.append(proc)
        self.logs[proc.pid] = log_path
        self.names[proc.pid] = name
        log(f"  started {name} (pid {proc.pid}): {shlex.join(prefix + argv)}")
        return proc

    def tail(self, proc: subprocess.Popen[bytes], lines: int = 15) -> str:
        path = self.logs.get(proc.pid)
        if not path or not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
        return "\n".join("    | " + line for line in text) or "    | (log is empty)"

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0, grace: float = 0) -> None:
        """Close its pipes, give it `grace` seconds to exit by itself, then SIGTERM the
        group, then SIGKILL after `timeout` seconds."""
        if proc in self.live:
            self.live.remove(proc)
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if stream:
                    stream.close()
        if grace > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        # Signal the group even if the leader is gone: its children may not be.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"  {self.names.get(proc.pid, proc.pid)} ignored SIGTERM, sending SIGKILL")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep going: every process must be stopped
                log(f"  could not stop pid {proc.pid}: {exc}")


def raise_on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- system


def find_tool(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(EXTRA_PATH)
    return shutil.which(name, path=path)


def ensure_tools(names: list[str]) -> dict[str, str]:
    """Return {name: path}, installing missing tools with apt-get when running as root."""
    missing = [n for n in names if not find_tool(n)]
    if missing:
        packages = [APT_PACKAGES[n] for n in missing]
        cmd_install = ["apt-get", "install", "-y", *packages]
        if os.geteuid() != 0:
            raise BenchError(
                f"missing {', '.join(missing)}; install as root with: apt-get update && "
                f"{shlex.join(cmd_install)}"
            )
        if not shutil.which("apt-get"):
            raise BenchError(f"missing {', '.join(missing)} and apt-get is not available")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update"], cmd_install):
            log(f"{', '.join(missing)} not found; running: {shlex.join(cmd)}")
            try:
                subprocess.run(cmd, check=True, env=env, timeout=900)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise BenchError(f"{shlex.join(cmd)} failed: {exc}") from exc
    tools = {}
    for n in names:
        found = find_tool(n)
        if not found:
            raise BenchError(f"{n} is still not on PATH after installing {APT_PACKAGES[n]}")
        tools[n] = found
    return tools


def raise_nofile(want: int) -> int:
    """Raise RLIMIT_NOFILE (soft, and hard when allowed) to at least `want`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    candidates = []
    if hard == resource.RLIM_INFINITY or hard >= want:
        candidates.append((want, hard))
    else:
        with contextlib.suppress(OSError, ValueError):
            nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
            candidates.append((min(want, nr_open), min(want, nr_open)))  # needs root
        candidates.append((hard, hard))
    for limits in candidates:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu model", "hardware")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def tool_version(argv: list[str], pattern: str) -> str:
    """First match of `pattern` (one group) in the tool's version output."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    rev = out.stdout.strip() if out.returncode == 0 else ""
    if not rev:
        return None
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        status = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "dispa", "pyproject.toml"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if status.stdout.strip():
            rev += "+dirty"
    return rev


def free_port(taken: set[int]) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port
    raise BenchError("could not find a free loopback port")


def tcp_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "dispa-bench"})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def proc_tree(pid: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [pid]
    while todo and len(tree) < 10_000:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def busy_ticks(cpus: set[int] | None) -> int:
    """Busy (non-idle, non-iowait) ticks of the given CPUs, from /proc/stat."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            if cpus is not None and int(name[3:]) not in cpus:
                continue
            f = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(f) - f[3] - f[4]
    return total


def rusage_seconds(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def proc_mem_kib(pid: int) -> dict[str, int]:
    out = {"rss": 0, "hwm": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["hwm"] = int(line.split()[1])
    return out


def tree_mem(pid: int) -> dict[str, Any]:
    procs = {p: proc_mem_kib(p) for p in proc_tree(pid)}
    return {
        "rss_kib": sum(m["rss"] for m in procs.values()),
        "hwm_kib": sum(m["hwm"] for m in procs.values()),
        "processes": len(procs),
        "main_rss_kib": procs.get(pid, {}).get("rss", 0),
        "main_hwm_kib": procs.get(pid, {}).get("hwm", 0),
    }


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(text: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise BenchError("could not find Requests/sec in wrk output:\n" + text)
    res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    res["requests"] = int(m.group(1)) if m else None
    res["seconds"] = round(_to_ms(m.group(2), m.group(3)) / 1000, 3) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        res[f"p{pct}_ms"] = round(_to_ms(m.group(1), m.group(2)), 4) if m else None
    if res["p50_ms"] is None or res["p99_ms"] is None:
        raise BenchError("could not find the latency distribution in wrk output:\n" + text)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    res["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    res["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
        if m
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    )
    return res


# --------------------------------------------------------------------------- servers


@dataclass
class Ctx:
    args: argparse.Namespace
    tools: dict[str, str]
    proxy_cpu: int | None
    load_cpu: int | None
    tmp: Path
    procs: Procs
    nofile: int
    upstream: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    taken: set[int] = field(default_factory=set)

    def port(self, key: str) -> int:
        if key not in self.ports:
            self.ports[key] = free_port(self.taken)
        return self.ports[key]


def render(template: str, dest: Path, **values: Any) -> Path:
    text = (CONF_DIR / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise BenchError(f"{template}: unfilled placeholders {sorted(set(leftover))}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


def dispa_python() -> str:
    venv_python = REPO / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def dispa_command(ctx: Ctx, config: Path, command: str = "run") -> list[str]:
    if ctx.args.dispa_cmd:
        return [*shlex.split(ctx.args.dispa_cmd), command, "-c", str(config)]
    script = REPO / ".venv" / "bin" / "dispa"
    if script.exists():
        return [str(script), command, "-c", str(config)]
    return [dispa_python(), "-m", "dispa", command, "-c", str(config)]


def wait_ready(
    ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int, admin_port: int | None
) -> None:
    """Wait, bounded, until the server accepts connections (or /readyz says 200)."""
    deadline = time.monotonic() + ctx.args.ready_timeout
    state = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with code {proc.returncode} before it was ready; "
                f"last log lines:\n{ctx.procs.tail(proc)}"
            )
        if admin_port is not None:
            try:
                status = http_get(admin_port, "/readyz", timeout=1.0)[0]
                if status == 200:
                    return
                state = f"admin /readyz answered {status}"
            except ConnectionRefusedError:
                state = "admin port refused connections"
                if tcp_accepts(port):  # admin API not up (yet): fall back to the listener
                    return
            except (OSError, http.client.HTTPException) as exc:
                state = f"admin /readyz: {exc!r}"
        elif tcp_accepts(port):
            return
        else:
            state = f"port {port} not accepting"
        time.sleep(0.1)
    raise BenchError(
        f"{name} not ready after {ctx.args.ready_timeout:.0f} s ({state}); "
        f"last log lines:\n{ctx.procs.tail(proc)}"
    )


def sanity_check(
    ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int, header: str | None = None
) -> None:
    """One request through the proxy must return the upstream's `200 ok`."""
    deadline = time.monotonic() + 5.0
    problem = "no attempt"
    while time.monotonic() < deadline:
        try:
            status, headers, body = http_get(port, "/", timeout=2.0)
        except (OSError, http.client.HTTPException) as exc:
            problem = repr(exc)
        else:
            if status == 200 and body == b"ok" and (header is None or header in headers):
                return
            problem = f"status {status}, body {body[:80]!r}"
            if header is not None and header not in headers:
                problem += f", response header {header!r} missing (is the filter chain on?)"
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise BenchError(
        f"{name}: GET / through the proxy did not return 200 'ok' ({problem}); "
        f"last log lines:\n{ctx.procs.tail(proc)}"
    )


def start_upstream(ctx: Ctx) -> subprocess.Popen[bytes]:
    port = ctx.port("upstream")
    prefix = ctx.tmp / "upstream"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = render(
        "nginx-upstream.conf",
        prefix / "nginx.conf",
        PREFIX=prefix,
        PORT=port,
        NOFILE=ctx.nofile,
        WORKER_CONNECTIONS=ctx.args.idle_conns + 4096,
    )
    splice_cached_location(conf)
    argv = [ctx.tools["nginx"], "-p", str(prefix), "-c", str(conf)]
    argv += ["-e", str(prefix / "error.log"), "-g", "daemon off;"]
    proc = ctx.procs.start("upstream-nginx", argv, cpu=ctx.load_cpu, nofile=ctx.nofile)
    wait_ready(ctx, "upstream nginx", proc, port, None)
    sanity_check(ctx, "upstream nginx", proc, port)
    status, headers, body = http_get(port, CACHE_PATH)
    if status != 200 or body != CACHE_BODY or "max-age" not in headers.get("cache-control", ""):
        raise BenchError(
            f"upstream nginx: GET {CACHE_PATH} answered {status} {body[:80]!r} "
            f"with Cache-Control {headers.get('cache-control')!r}"
        )
    return proc


def splice_cached_location(conf: Path) -> None:
    """Add the cache-hit cases' `location = /cached` (conf/nginx-upstream-cached.conf)
    to the rendered upstream config, just before its `location / {`."""
    anchor = "        location / {"
    text = conf.read_text()
    if text.count(anchor) != 1:
        raise BenchError(f"nginx-upstream.conf: expected one {anchor.strip()!r} block")
    fragment = (CONF_DIR / "nginx-upstream-cached.conf").read_text()
    block = "".join(f"        {line}\n" if line.strip() else "\n" for line in fragment.splitlines())
    conf.write_text(text.replace(anchor, block + anchor))


def start_pinned(
    ctx: Ctx,
    kind: str,
    argv: list[str],
    port: int,
    admin_port: int | None,
    check: Callable[[subprocess.Popen[bytes]], None],
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start the proxy under test on the proxy core, wait until it serves, then `check`
    that it answers as its case expects; a proxy that does not is stopped."""
    proc = ctx.procs.start(kind, argv, cpu=ctx.proxy_cpu, nofile=ctx.nofile, cwd=cwd)
    try:
        wait_ready(ctx, kind, proc, port, admin_port)
        check(proc)
    except BaseException:
        ctx.procs.stop(proc)
        raise
    return proc


def nginx_argv(ctx: Ctx, workdir: Path, conf: Path) -> list[str]:
    """nginx in the foreground with its prefix, config and error log under `workdir`."""
    argv = [ctx.tools["nginx"], "-p", str(workdir), "-c", str(conf)]
    return [*argv, "-e", str(workdir / "error.log"), "-g", "daemon off;"]


def run_wrk(
    ctx: Ctx, port: int, duration: int, path: str = "/", script: Path | None = None
) -> dict[str, Any]:
    """One wrk run; `script` is a wrk Lua script (the POST cases set method and body)."""
    a = ctx.args
    argv = [ctx.tools["wrk"], f"-t{a.threads}", f"-c{a.connections}", f"-d{duration}s"]
    if script is not None:
        argv += ["-s", str(script)]
    argv += ["--latency", f"http://127.0.0.1:{port}{path}"]
    proc = ctx.procs.start(f"wrk-{port}", argv, cpu=ctx.load_cpu, pipes=True)
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + 30} s") from exc
    finally:
        ctx.procs.stop(proc)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{text}\n{ctx.procs.tail(proc)}")
    return parse_wrk(text)


# --------------------------------------------------------------------------- report


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def any_noisy(results: dict[str, Any]) -> bool:
    runs = [*results["throughput"].values(), *results["cache"].values()]
    runs += results.get("filters", {}).values()
    return any(r["noisy"] for r in runs)


NOISY_NOTE = (
    f"* other processes used more than {OTHER_LOAD_WARN_PCT:.0f}% of a CPU on the benchmark "
    "cores during every attempt of this case: its ratios are unreliable."
)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells)

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |"]
    out.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def write_results(results: dict[str, Any]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    log(f"\nresults written to {RESULTS_FILE.relative_to(REPO)}")


def write_docs(section: str) -> None:
    """Replace everything below DOCS_MARKER in docs/benchmarks.md with `section` (which
    starts with the marker)."""
    text = DOCS_FILE.read_text() if DOCS_FILE.exists() else "# Benchmarks\n"
    intro = text.split(DOCS_MARKER, 1)[0].rstrip() + "\n\n"
    DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_FILE.write_text(intro + section)
    log(f"updated {DOCS_FILE.relative_to(REPO)}")
