"""Side-by-side benchmark of Dispa against nginx and HAProxy (`make bench`).

Every proxy runs in turn in the same invocation, on the same pinned core, in front of
the same upstream (nginx `return 200 "ok"`), under the same wrk load; results are
reported as ratios to nginx and HAProxy. A cache-hit case sets a Dispa edge against
nginx `proxy_cache` the same way, reported as a ratio of the two. See bench/README.md
and docs/benchmarks.md.

    .venv/bin/python bench/run.py                  # full run, 10 s per case
    .venv/bin/python bench/run.py --quick          # 3 s per case
    .venv/bin/python bench/run.py --only nginx,haproxy
    .venv/bin/python bench/run.py --write-docs     # also regenerate docs/benchmarks.md

Exit status: 0 when every selected case ran (whether or not targets were met), 1 when
something failed to run, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/protocols.py (the HTTP/2 and TLS cases) takes its helpers from this script as `run`.
sys.modules.setdefault("run", sys.modules[__name__])
import protocols  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CONF_DIR = BENCH_DIR / "conf"
IDLE_CLIENT = BENCH_DIR / "idle_clients.py"
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_MARKER = "<!-- results -->"

THROUGHPUT_CASES = ("nginx", "haproxy", "dispa-minimal", "dispa-chain")
# Cache hits: the proxy answers GET /cached from its cache; the reference is nginx-cache.
CACHE_CASES = ("nginx-cache", "dispa-edge-cache")
ALL_CASES = (
    "dispa-minimal",
    "dispa-chain",
    "nginx",
    "haproxy",
    "nginx-cache",
    "dispa-edge-cache",
    *protocols.CASES,
    "memory",
)
MEMORY_SERVERS = ("dispa-minimal", "nginx", "haproxy")

# Targets: Dispa case (a) and (b) throughput as a fraction of nginx, and peak RSS.
TARGET_MINIMAL = 0.6
TARGET_CHAIN = 0.5
TARGET_RSS_MIB = 100.0
OTHER_LOAD_WARN_PCT = 10.0  # CPU % used by foreign processes above which a run is flagged

# The cache-hit cases. The upstream serves CACHE_PATH (conf/nginx-upstream-cached.conf,
# spliced into its server block) with `Cache-Control: public, max-age=3600`; each proxy
# marks a hit in its own response header. During a measured run the upstream must stay
# idle: above CACHE_UPSTREAM_MAX_PCT of a CPU it served misses and the run is rejected.
CACHE_PATH = "/cached"
CACHE_BODY = b"cached ok"
CACHE_HIT_HEADER = {"nginx-cache": "x-cache-status", "dispa-edge-cache": "x-cache"}
CACHE_UPSTREAM_MAX_PCT = 5.0

APT_PACKAGES = {
    "nginx": "nginx-light",
    "haproxy": "haproxy",
    "wrk": "wrk",
    **protocols.APT_PACKAGES,
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


def _raise_sigterm(signum: int, _frame: Any) -> None:
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


# --------------------------------------------------------------------------- /proc


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


# --------------------------------------------------------------------------- wrk

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


# --------------------------------------------------------------------------- harness


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


def cache_check(ctx: Ctx, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    """Readiness and sanity check of a cache-hit case: GET /cached through the proxy
    until it answers 200 with the upstream's body, marked a cache hit (the first request
    is the miss that stores it). A cache case that measured misses would be wrong."""
    header = CACHE_HIT_HEADER[name]
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


def start_proxy(ctx: Ctx, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the proxy under test on its own port, pinned, and wait until it serves."""
    port = ctx.port(kind)
    upstream = ctx.port("upstream")
    workdir = ctx.tmp / kind
    workdir.mkdir(parents=True, exist_ok=True)
    admin_port = None
    header = None
    cwd = None
    if kind in ("nginx", "nginx-cache"):
        (workdir / "tmp").mkdir(exist_ok=True)
        if kind == "nginx-cache" and os.geteuid() == 0:
            # A root master runs its worker as `nobody`, which must reach the cache files
            # under the temp prefix (mkdtemp makes it 0700): let it traverse, not list.
            ctx.tmp.chmod(0o711)
        conf = render(
            "nginx-proxy.conf" if kind == "nginx" else "nginx-cache.conf",
            workdir / "nginx.conf",
            PREFIX=workdir,
            PORT=port,
            UPSTREAM_PORT=upstream,
            NOFILE=ctx.nofile,
            WORKER_CONNECTIONS=ctx.args.idle_conns + 4096,
        )
        argv = [ctx.tools["nginx"], "-p", str(workdir), "-c", str(conf)]
        argv += ["-e", str(workdir / "error.log"), "-g", "daemon off;"]
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
    proc = ctx.procs.start(kind, argv, cpu=ctx.proxy_cpu, nofile=ctx.nofile, cwd=cwd)
    try:
        wait_ready(ctx, kind, proc, port, admin_port)
        if kind in CACHE_CASES:
            cache_check(ctx, kind, proc, port)
        else:
            sanity_check(ctx, kind, proc, port, header)
    except BaseException:
        ctx.procs.stop(proc)
        raise
    return proc, port


def run_wrk(ctx: Ctx, port: int, duration: int, path: str = "/") -> dict[str, Any]:
    a = ctx.args
    argv = [ctx.tools["wrk"], f"-t{a.threads}", f"-c{a.connections}", f"-d{duration}s"]
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


def measure_once(
    ctx: Ctx, kind: str, proc: subprocess.Popen[bytes], port: int, path: str = "/"
) -> dict:
    """One measured wrk run, with CPU accounting: the proxy's share of its core, and the
    CPU used on our two cores by anything not ours (other load on the machine)."""
    a = ctx.args
    pids = proc_tree(proc.pid)
    up_pids = proc_tree(ctx.upstream.pid) if ctx.upstream else []
    cpus = set(os.sched_getaffinity(0)) if ctx.proxy_cpu is None else {ctx.proxy_cpu, ctx.load_cpu}
    p0, u0, b0 = cpu_ticks(pids), cpu_ticks(up_pids), busy_ticks(cpus)
    c0 = rusage_seconds(resource.RUSAGE_CHILDREN) + rusage_seconds(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    log(f"  wrk -t{a.threads} -c{a.connections} -d{a.duration}s --latency {path}")
    res = run_wrk(ctx, port, a.duration, path)
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
    if kind in CACHE_CASES and res["upstream_cpu_pct"] > CACHE_UPSTREAM_MAX_PCT:
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


def bench_throughput(ctx: Ctx, kind: str) -> dict[str, Any]:
    """Warm up, then measure; a run disturbed by other load on the benchmark cores is
    repeated (--noise-retries times at most) and the least disturbed run is kept."""
    a = ctx.args
    path = CACHE_PATH if kind in CACHE_CASES else "/"
    log(f"\n== {kind}: {'cache hits' if kind in CACHE_CASES else 'throughput'}")
    proc, port = start_proxy(ctx, kind)
    try:
        log(f"  warm-up {a.warmup} s")
        if a.warmup > 0:
            run_wrk(ctx, port, a.warmup, path)
        best: dict[str, Any] | None = None
        for attempt in range(1 + a.noise_retries):
            res = measure_once(ctx, kind, proc, port, path)
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


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def compute_summary(results: dict[str, Any]) -> dict[str, Any]:
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
    mem = results["memory"].get("dispa-minimal", {}).get("peak_rss_mib")
    n = results["settings"]["idle_conns"]

    # Cache hits: informational, the issue sets no number for it.
    cache = results["cache"]
    nginx_cache = cache.get("nginx-cache", {}).get("rps")
    for res in cache.values():
        res["x_nginx_cache"] = round(res["rps"] / nginx_cache, 3) if nginx_cache else None
    c = cache.get("dispa-edge-cache", {}).get("x_nginx_cache")
    c_note = noisy if c is not None and any(r["noisy"] for r in cache.values()) else ""
    cache_hit = {
        "target": "cache hit: Dispa edge vs nginx proxy_cache",
        "value": c,
        "shown": _fmt(c, ".2f", "-") + ("x" if c is not None else "") + c_note,
        "status": "NOT MEASURED" if c is None else "INFO",
    }
    return {
        "cache_hit_ratio": c,
        "targets": [
            target(
                f"(a) Dispa minimal route >= {TARGET_MINIMAL}x nginx req/s",
                a,
                a is not None and a >= TARGET_MINIMAL,
                _fmt(a, ".2f", "-") + ("x" if a is not None else "") + a_note,
            ),
            target(
                f"(b) Dispa default chain >= {TARGET_CHAIN}x nginx req/s",
                b,
                b is not None and b >= TARGET_CHAIN,
                _fmt(b, ".2f", "-") + ("x" if b is not None else "") + b_note,
            ),
            target(
                f"(c) Dispa peak RSS with {n:,} idle connections <= {TARGET_RSS_MIB:.0f} MiB",
                mem,
                mem is not None and mem <= TARGET_RSS_MIB,
                _fmt(mem, ".1f", "-") + (" MiB" if mem is not None else ""),
            ),
            cache_hit,
            *protocols.summary_targets(results),
        ],
    }


def throughput_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for kind in THROUGHPUT_CASES:
        res = results["throughput"].get(kind)
        if res is None:
            continue
        rows.append(
            [
                kind,
                f"{res['rps']:,.0f}",
                _fmt(res.get("x_nginx"), ".2f"),
                _fmt(res.get("x_haproxy"), ".2f"),
                f"{res['p50_ms']:.3f}",
                f"{res['p99_ms']:.3f}",
                _fmt(res.get("proxy_cpu_pct"), ".0f") + "%",
                _fmt(res.get("other_cpu_pct"), ".0f") + ("% *" if res.get("noisy") else "%"),
            ]
        )
    return rows


THROUGHPUT_HEADER = [
    "case",
    "req/s",
    "x nginx",
    "x haproxy",
    "p50 ms",
    "p99 ms",
    "proxy CPU",
    "other load",
]
MEMORY_HEADER = ["server", "RSS idle MiB", "RSS MiB", "peak RSS MiB", "KiB/conn", "processes"]
CACHE_HEADER = [
    "case",
    "req/s",
    "x nginx-cache",
    "p50 ms",
    "p99 ms",
    "proxy CPU",
    "upstream CPU",
    "other load",
]


def cache_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for kind in CACHE_CASES:
        res = results["cache"].get(kind)
        if res is None:
            continue
        rows.append(
            [
                kind,
                f"{res['rps']:,.0f}",
                _fmt(res.get("x_nginx_cache"), ".2f"),
                f"{res['p50_ms']:.3f}",
                f"{res['p99_ms']:.3f}",
                _fmt(res.get("proxy_cpu_pct"), ".0f") + "%",
                _fmt(res.get("upstream_cpu_pct"), ".0f") + "%",
                _fmt(res.get("other_cpu_pct"), ".0f") + ("% *" if res.get("noisy") else "%"),
            ]
        )
    return rows


CACHE_TITLE = (
    f"Cache hits (GET {CACHE_PATH}, stored after the first request; Dispa edge with its "
    "memory cache vs nginx proxy_cache, one worker each; upstream CPU near 0% shows that "
    "the upstream served no request during the run):"
)


def any_noisy(results: dict[str, Any]) -> bool:
    runs = [*results["throughput"].values(), *results["cache"].values()]
    return any(r["noisy"] for r in runs)


def memory_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for kind in MEMORY_SERVERS:
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


def print_report(results: dict[str, Any]) -> None:
    log("\n" + "=" * 72)
    log(f"Dispa benchmark  {results['date']}  ({results['cpu']['model']})")
    log(results["cpu"]["pinning"])
    rows = throughput_rows(results)
    if rows:
        log("")
        log(text_table(THROUGHPUT_HEADER, rows))
    crows = cache_rows(results)
    if crows:
        log("\n" + CACHE_TITLE)
        log(text_table(CACHE_HEADER, crows))
        ratio = results["summary"]["cache_hit_ratio"]
        if ratio is not None:
            log(f"dispa-edge-cache / nginx-cache: {ratio:.2f}x req/s")
    if protocols.report_text(results):
        log(protocols.report_text(results))
    if any_noisy(results):
        log(NOISY_NOTE)
    mrows = memory_rows(results)
    if mrows:
        log(f"\nRSS with {results['settings']['idle_conns']:,} idle keep-alive connections:")
        log(text_table(MEMORY_HEADER, mrows))
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
        md_table(THROUGHPUT_HEADER, throughput_rows(results)),
        "",
    ]
    crows = cache_rows(results)
    if crows:
        lines += [CACHE_TITLE, "", md_table(CACHE_HEADER, crows), ""]
        ratio = results["summary"]["cache_hit_ratio"]
        if ratio is not None:
            lines += [
                f"Cache hit ratio, `dispa-edge-cache` / `nginx-cache` req/s: **{ratio:.2f}x** "
                f"(`{results['command']}`).",
                "",
            ]
    lines += protocols.report_markdown(results)
    if any_noisy(results):
        lines += [NOISY_NOTE, ""]
    mrows = memory_rows(results)
    if mrows:
        lines += [
            f"Memory with {s['idle_conns']:,} idle keep-alive connections "
            "(sum over the server's process tree; peak is VmHWM):",
            "",
            md_table(MEMORY_HEADER, mrows),
            "",
        ]
    lines += ["Targets:", ""]
    lines += [
        f"- {t['status']}: {t['target']}: {t['shown']}" for t in results["summary"]["targets"]
    ]
    return "\n".join(lines) + "\n"


def write_docs(results: dict[str, Any]) -> None:
    text = DOCS_FILE.read_text() if DOCS_FILE.exists() else "# Benchmarks\n"
    intro = text.split(DOCS_MARKER, 1)[0].rstrip() + "\n\n"
    DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_FILE.write_text(intro + docs_section(results))
    log(f"updated {DOCS_FILE.relative_to(REPO)}")


# --------------------------------------------------------------------------- main


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
    signal.signal(signal.SIGTERM, _raise_sigterm)
    signal.signal(signal.SIGHUP, _raise_sigterm)
    command = shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    sel = args.selected
    memory = "memory" in sel
    want_tools = ["nginx"]
    if any(c in sel for c in THROUGHPUT_CASES + CACHE_CASES):
        want_tools.append("wrk")
    if "haproxy" in sel or memory:
        want_tools.append("haproxy")
    want_tools += protocols.tools_needed(sel)
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
        for kind in THROUGHPUT_CASES + CACHE_CASES:
            if kind not in sel:
                continue
            bucket = results["cache"] if kind in CACHE_CASES else results["throughput"]
            try:
                bucket[kind] = bench_throughput(ctx, kind)
            except BenchError as exc:
                log(f"  FAILED: {exc}")
                failures.append({"case": kind, "error": str(exc)})
            if upstream.poll() is not None:
                raise BenchError(f"upstream nginx exited:\n{procs.tail(upstream)}")
        protocols.run_cases(ctx, results)
        if memory:
            for kind in MEMORY_SERVERS:
                try:
                    results["memory"][kind] = bench_memory(ctx, kind)
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
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    log(f"\nresults written to {RESULTS_FILE.relative_to(REPO)}")
    if args.write_docs:
        if failures:
            log("not updating docs/benchmarks.md: the run had failures")
        else:
            write_docs(results)
    if failures:
        names = ", ".join(f["case"] for f in failures)
        log(f"FAILED to run: {names}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
