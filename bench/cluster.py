"""Config commit latency and leader failover of Dispa's core cluster, beside etcd
(`make bench-cluster`).

One run starts a 3-core Dispa cluster (``python -m dispa core``) and then 3-member etcd
clusters, all on 127.0.0.1 with fresh data directories in a temp dir, one system at a time,
and measures for each:

- commit latency: sequential writes of small distinct configs, each acknowledged only
  once committed — ``PUT /api/v1/config`` on Dispa, ``POST /v3/kv/put`` (etcd's JSON
  gateway) on etcd — sent to the leader and to a follower over a keep-alive connection;
- failover: ``kill -9`` of the leader, then a write every 50 ms (in parallel) round-robin to
  the survivors; the time from the kill to the first acknowledgement, over several trials
  (the killed member is restarted between trials).

    .venv/bin/python bench/cluster.py                        # Dispa defaults, etcd x2
    .venv/bin/python bench/cluster.py --write-docs           # also update docs/benchmarks.md
    .venv/bin/python bench/cluster.py --no-etcd --writes 50 \\
        --raft-timings default 0.4/1.4/0.1/3.5 0.2/0.4/0.05/1.5 --stability 20

``--raft-timings`` runs Dispa once per Raft setting, written
``ELECTION_MIN/ELECTION_MAX/HEARTBEAT/CONNECTION_TIMEOUT`` in seconds (``default``: the
core config leaves them unset). ``--stability S`` also loads each Dispa cluster for S
seconds with parallel config writes and wrk through every core's listener, and reports
any Raft term change (an election nobody asked for).

Exit status: 0 when every measurement ran, 1 when one failed, 130 when interrupted.
Every process started here is killed on the way out, on error and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "cluster.json"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_BEGIN, DOCS_END = "<!-- cluster-results -->", "<!-- /cluster-results -->"
# bench/run.py --write-docs rewrites everything after this marker: the cluster section is
# kept before it so that the two benchmarks never erase each other's results.
RUN_PY_DOCS_MARKER = "<!-- results -->"

_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
HOST = "127.0.0.1"
MEMBERS = 3
SECRET = "bench-cluster-secret"
READY_TIMEOUT = 40.0
# A failover trial without an acknowledged write by then counts as failed.
FAILOVER_LIMIT = 30.0
# While failing over, a new write attempt starts this often (the figure's resolution);
# each waits up to the timeout, so a slow commit still counts.
FAILOVER_ATTEMPT_INTERVAL = 0.05
FAILOVER_ATTEMPT_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
# Before each failover trial the cluster stands idle for its Raft connection timeout plus
# this. pysyncobj drops a message sent on a connection that has read nothing for that
# long, and followers never talk to each other: in a long-running cluster the first vote
# request of an election is lost. Trials must meet that case, not a freshly connected one.
SETTLE_SECONDS = 1.5
DEFAULT_CONNECTION_TIMEOUT = 1.5  # RaftSettings.connection_timeout
ETCD_KEY = b"bench/config"
PROBE_PATH = "/probe"


class Interrupted(Exception):
    """SIGTERM or SIGINT: stop measuring, kill what we started, exit 130."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class ChildProcesses:
    """Every process this run started, each in its own session so that killing its group
    reaches it and nothing else."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        with open(self.log_dir / f"{name}.log", "ab") as output:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self.started.append(popen)
        return popen

    @staticmethod
    def kill(popen: subprocess.Popen | None) -> None:
        if popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5.0)

    def kill_all(self) -> None:
        for popen in self.started:
            self.kill(popen)
        self.started.clear()


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when this script dies, even by SIGKILL, which
    no finally clause sees (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as error:
            result, last_error = None, error
        if result:
            return result
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what} ({last_error!r})")


# --------------------------------------------------------------------------- HTTP


class HttpClient:
    """One keep-alive connection to one address; reconnects after any error."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = WRITE_TIMEOUT,
    ) -> tuple[int, bytes]:
        host, _, port = self.address.rpartition(":")
        if self._connection is None:
            self._connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self._connection.timeout = timeout
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        try:
            self._connection.request(method, path, body=body, headers=headers or {})
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def one_request(address: str, method: str, path: str, body: bytes, timeout: float):
    client = HttpClient(address)
    try:
        return client.request(method, path, body, timeout=timeout)
    finally:
        client.close()


# --------------------------------------------------------------------------- the systems


def probe_config(serial: int) -> bytes:
    """A small Dispa shared config, distinct for each ``serial``; also the etcd value."""
    config = {
        "routes": [
            {
                "name": "probe",
                "match": {"host": "*", "path_exact": PROBE_PATH},
                "direct_response": {"status": 200, "body": f"bench write {serial}\n"},
            }
        ],
        "access_log": {"enabled": False},
    }
    return json.dumps(config).encode()


@dataclass
class Member:
    name: str
    client_address: str  # where writes go: Dispa's admin API, etcd's client URL
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None
    listener_address: str = ""  # Dispa only: the data-plane listener

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class System:
    """A 3-member Raft system under test: start, find the leader, write, kill, restart."""

    label: str
    settings: str
    members: list[Member]
    settle_seconds: float = SETTLE_SECONDS

    def __init__(self, processes: ChildProcesses, workdir: Path) -> None:
        self.processes = processes
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        for member in self.members:
            self.start_member(member)
        self.wait_ready()

    def start_member(self, member: Member) -> None:
        log_name = f"{self.workdir.name}-{member.name}"
        member.popen = self.processes.start(log_name, member.argv, member.env)

    def kill_member(self, member: Member) -> None:
        self.processes.kill(member.popen)

    def stop(self) -> None:
        for member in self.members:
            self.kill_member(member)

    def wait_ready(self) -> None:
        def ready() -> bool:
            for member in self.members:
                if not member.alive():
                    raise RuntimeError(f"{member.name} exited; see {self.workdir}")
            return self.leader() is not None and self.caught_up()

        wait_until(ready, READY_TIMEOUT, f"{self.label} to have a leader", interval=0.1)

    # Implemented by each system.
    def leader(self) -> Member | None:
        raise NotImplementedError

    def caught_up(self) -> bool:
        return True

    def write_request(self, serial: int) -> tuple[str, str, bytes, dict[str, str]]:
        raise NotImplementedError

    def acknowledged(self, status: int, body: bytes) -> bool:
        raise NotImplementedError

    def write(self, client: HttpClient, serial: int, timeout: float) -> bool:
        """One write; True only when the system said it is committed."""
        method, path, body, headers = self.write_request(serial)
        status, answer = client.request(method, path, body, headers, timeout=timeout)
        return self.acknowledged(status, answer)


class DispaCluster(System):
    def __init__(
        self, processes: ChildProcesses, workdir: Path, raft_timings: dict[str, float] | None
    ) -> None:
        super().__init__(processes, workdir)
        self.label = "Dispa"
        self.raft_timings = raft_timings or {}
        self.settings = describe_timings(raft_timings)
        connection_timeout = self.raft_timings.get("connection_timeout", DEFAULT_CONNECTION_TIMEOUT)
        self.settle_seconds = min(connection_timeout, 10.0) + SETTLE_SECONDS
        ports = free_ports(3 * MEMBERS)
        raft_ports = ports[:MEMBERS]
        self.members = []
        for index in range(MEMBERS):
            name = f"dispa-core-{index + 1}"
            node_dir = workdir / name
            node_dir.mkdir(parents=True, exist_ok=True)
            config = {
                "node": {"id": name, "data_dir": str(node_dir / "data"), "secret": SECRET},
                "raft": {
                    "address": f"{HOST}:{raft_ports[index]}",
                    "peers": [f"{HOST}:{port}" for port in raft_ports if port != raft_ports[index]],
                    **self.raft_timings,
                },
                "listeners": [{"name": "public", "address": f"{HOST}:{ports[MEMBERS + index]}"}],
                "admin": {"address": f"{HOST}:{ports[2 * MEMBERS + index]}"},
            }
            config_path = node_dir / "core.json"  # JSON is YAML: no yaml import needed here
            config_path.write_text(json.dumps(config, indent=2))
            self.members.append(
                Member(
                    name=name,
                    client_address=config["admin"]["address"],
                    argv=[
                        PYTHON,
                        "-m",
                        "dispa",
                        "--log-level",
                        "warning",
                        "core",
                        "-c",
                        str(config_path),
                    ],
                    listener_address=config["listeners"][0]["address"],
                )
            )
        self._raft_to_member = {
            f"{HOST}:{raft_ports[index]}": member for index, member in enumerate(self.members)
        }

    def node_status(self, member: Member) -> dict:
        status, body = one_request(member.client_address, "GET", "/api/v1/node", b"", 2.0)
        if status != 200:
            raise RuntimeError(f"{member.name}: /api/v1/node answered {status}")
        return json.loads(body)

    def leader(self) -> Member | None:
        leaders = {self.node_status(member)["leader"] for member in self.members if member.alive()}
        if len(leaders) != 1:
            return None
        leader = self._raft_to_member.get(leaders.pop())
        return leader if leader is not None and leader.alive() else None

    def caught_up(self) -> bool:
        statuses = [self.node_status(member) for member in self.members if member.alive()]
        revision = max(status["revision"] for status in statuses)
        return all(status["applied_revision"] == revision for status in statuses)

    def terms(self) -> dict[str, int]:
        return {member.name: self.node_status(member)["term"] for member in self.members}

    def write_request(self, serial: int):
        headers = {"Content-Type": "application/json"}
        return "PUT", "/api/v1/config", probe_config(serial), headers

    def acknowledged(self, status: int, body: bytes) -> bool:
        return status == 200 and json.loads(body).get("ok") is True


class EtcdCluster(System):
    def __init__(
        self,
        processes: ChildProcesses,
        workdir: Path,
        heartbeat_ms: int,
        election_ms: int,
        label: str,
    ) -> None:
        super().__init__(processes, workdir)
        self.label = label
        self.settings = f"heartbeat {heartbeat_ms} ms, election timeout {election_ms} ms"
        client_ports, peer_ports = free_ports(MEMBERS), free_ports(MEMBERS)
        names = [f"etcd-{index + 1}" for index in range(MEMBERS)]
        initial_cluster = ",".join(
            f"{name}=http://{HOST}:{port}" for name, port in zip(names, peer_ports, strict=True)
        )
        token = f"bench-{os.getpid()}-{int(time.time())}-{label.replace(' ', '-')}"
        self.members = []
        for name, client_port, peer_port in zip(names, client_ports, peer_ports, strict=True):
            client_url, peer_url = f"http://{HOST}:{client_port}", f"http://{HOST}:{peer_port}"
            argv = [
                shutil.which("etcd") or "etcd",
                "--name", name,
                "--data-dir", str(workdir / name),
                "--listen-client-urls", client_url,
                "--advertise-client-urls", client_url,
                "--listen-peer-urls", peer_url,
                "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-token", token,
                "--initial-cluster-state", "new",  # ignored on restart: the data dir wins
                "--heartbeat-interval", str(heartbeat_ms),
                "--election-timeout", str(election_ms),
                "--logger", "zap",
                "--log-level", "error",
            ]  # fmt: skip
            self.members.append(
                Member(name=name, client_address=f"{HOST}:{client_port}", argv=argv)
            )
        self._member_ids: dict[str, Member] = {}

    def status(self, member: Member) -> dict:
        status, body = one_request(
            member.client_address, "POST", "/v3/maintenance/status", b"{}", 2.0
        )
        if status != 200:
            raise RuntimeError(f"{member.name}: status answered {status}")
        document = json.loads(body)
        self._member_ids[document["header"]["member_id"]] = member
        return document

    def leader(self) -> Member | None:
        leaders = {self.status(member).get("leader") for member in self.members if member.alive()}
        if len(leaders) != 1:
            return None
        leader = self._member_ids.get(leaders.pop())
        return leader if leader is not None and leader.alive() else None

    def caught_up(self) -> bool:
        # Each member's raft index is where its log ends; equal means nothing is missing.
        indexes = {self.status(m).get("raftIndex") for m in self.members if m.alive()}
        return len(indexes) == 1

    def write_request(self, serial: int):
        payload = {
            "key": base64.b64encode(ETCD_KEY).decode(),
            "value": base64.b64encode(probe_config(serial)).decode(),
        }
        return "POST", "/v3/kv/put", json.dumps(payload).encode(), {}

    def acknowledged(self, status: int, body: bytes) -> bool:
        return status == 200 and "header" in json.loads(body)


def describe_timings(timings: dict[str, float] | None) -> str:
    if not timings:
        return "defaults (RaftSettings)"
    return (
        f"election {timings['election_min']:g}-{timings['election_max']:g} s, "
        f"heartbeat {timings['heartbeat']:g} s, connection timeout "
        f"{timings['connection_timeout']:g} s"
    )


def parse_timings(text: str) -> dict[str, float] | None:
    if text == "default":
        return None
    try:
        election_min, election_max, heartbeat, connection_timeout = map(float, text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write ELECTION_MIN/ELECTION_MAX/HEARTBEAT/CONNECTION_TIMEOUT in seconds"
            " (e.g. 0.3/0.6/0.05/1.5) or default"
        ) from None
    return {
        "election_min": election_min,
        "election_max": election_max,
        "heartbeat": heartbeat,
        "connection_timeout": connection_timeout,
    }


# --------------------------------------------------------------------------- measurements


class Serials:
    """Distinct write numbers across the whole run, so no write is a no-op repeat."""

    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            self._next += 1
            return self._next


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))  # ceil without math
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    milliseconds = [value * 1000 for value in seconds]
    return {
        "writes": len(milliseconds),
        "p50_ms": round(percentile(milliseconds, 0.50), 2),
        "p99_ms": round(percentile(milliseconds, 0.99), 2),
        "mean_ms": round(statistics.fmean(milliseconds), 2),
        "max_ms": round(max(milliseconds), 2),
    }


def measure_commit_latency(system: System, via: Member, writes: int, serials: Serials):
    client = HttpClient(via.client_address)
    try:
        system.write(client, serials.take(), WRITE_TIMEOUT)  # warm the connection up
        durations = []
        for _ in range(writes):
            started = time.perf_counter()
            if not system.write(client, serials.take(), WRITE_TIMEOUT):
                raise RuntimeError(f"{system.label}: a write via {via.name} was refused")
            durations.append(time.perf_counter() - started)
    finally:
        client.close()
    return durations


def one_failover(system: System, serials: Serials) -> dict[str, Any]:
    """kill -9 the leader, then start a write every ATTEMPT_INTERVAL, round-robin to the
    survivors, each in its own thread: the first acknowledgement marks the moment a client
    can write again. Parallel attempts keep the figure from depending on how long one
    stuck request waits (a write forwarded to the dead leader hangs until it times out).
    Restarts the killed member afterwards and waits for a steady cluster."""
    system.wait_ready()
    time.sleep(system.settle_seconds)
    leader = system.leader()
    survivors = [member for member in system.members if member is not leader]
    acknowledged_at: list[float] = []

    def attempt(member: Member) -> None:
        client = HttpClient(member.client_address)
        try:
            if system.write(client, serials.take(), FAILOVER_ATTEMPT_TIMEOUT):
                acknowledged_at.append(time.monotonic())  # list.append is atomic
        except (OSError, http.client.HTTPException, ValueError):
            pass  # refused, reset or timed out: later attempts carry on
        finally:
            client.close()

    attempts: list[threading.Thread] = []
    killed_at = time.monotonic()
    system.kill_member(leader)
    while not acknowledged_at and time.monotonic() - killed_at < FAILOVER_LIMIT:
        thread = threading.Thread(
            target=attempt, args=(survivors[len(attempts) % len(survivors)],), daemon=True
        )
        thread.start()
        attempts.append(thread)
        time.sleep(FAILOVER_ATTEMPT_INTERVAL)
    elapsed = min(acknowledged_at) - killed_at if acknowledged_at else None
    for thread in attempts:
        thread.join(timeout=FAILOVER_ATTEMPT_TIMEOUT + 1.0)
    system.start_member(leader)
    system.wait_ready()
    return {"killed": leader.name, "seconds": elapsed, "attempts": len(attempts)}


def measure_system(system: System, args: argparse.Namespace, serials: Serials) -> dict:
    log(f"== {system.label}: {system.settings}")
    system.start()
    result: dict[str, Any] = {"system": system.label, "settings": system.settings}
    leader = system.leader()
    follower = next(member for member in system.members if member is not leader)
    if args.writes:
        for role, member in (("leader", leader), ("follower", follower)):
            durations = measure_commit_latency(system, member, args.writes, serials)
            result[f"latency_via_{role}"] = latency_summary(durations)
            log(f"   commit latency via {role}: {format_latency(result[f'latency_via_{role}'])}")
    trials = []
    for trial in range(args.failover_trials):
        outcome = one_failover(system, serials)
        trials.append(outcome)
        shown = "FAILED" if outcome["seconds"] is None else f"{outcome['seconds']:.3f} s"
        log(f"   failover trial {trial + 1}: {shown} (killed {outcome['killed']})")
    timed = [t["seconds"] for t in trials if t["seconds"] is not None]
    result["failover"] = {
        "trials": trials,
        "failed": len(trials) - len(timed),
        "median_s": round(statistics.median(timed), 3) if timed else None,
        "min_s": round(min(timed), 3) if timed else None,
        "max_s": round(max(timed), 3) if timed else None,
    }
    if args.stability and isinstance(system, DispaCluster):
        result["stability"] = measure_stability(
            system, args.stability, args.stability_writers, serials
        )
    system.stop()
    return result


def measure_stability(
    system: DispaCluster, seconds: float, writers_per_core: int, serials: Serials
) -> dict:
    """Saturate the cluster with config writes and HTTP traffic; any term change during the
    load is an election nobody asked for (no member is killed here)."""
    leader = system.leader()
    client = HttpClient(leader.client_address)
    system.write(client, serials.take(), WRITE_TIMEOUT)  # /probe exists on every listener
    client.close()
    wait_until(system.caught_up, 10.0, "the probe config on every core")
    terms_before = system.terms()
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    counts_lock = threading.Lock()

    def writer(member: Member) -> None:
        client = HttpClient(member.client_address)
        while not stop.is_set():
            try:
                ok = system.write(client, serials.take(), WRITE_TIMEOUT)
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
            with counts_lock:
                counts["ok" if ok else "failed"] += 1
        client.close()

    # Writers on every core: followers forward to the leader, so all Raft paths are busy.
    writers = [
        threading.Thread(target=writer, args=(member,), daemon=True)
        for member in system.members
        for _ in range(writers_per_core)
    ]
    wrk = shutil.which("wrk")
    load = []
    if wrk:
        load = [
            system.processes.start(
                f"wrk-{system.workdir.name}-{member.name}",
                [
                    wrk,
                    "-t1",
                    "-c16",
                    f"-d{int(seconds)}s",
                    f"http://{member.listener_address}{PROBE_PATH}",
                ],
            )
            for member in system.members
        ]
    for thread in writers:
        thread.start()
    observed_terms: set[int] = set(terms_before.values())
    leaders_seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # Sample terms while loaded: an election and its recovery can both fit between
        # a before and an after reading, but not between these samples unnoticed.
        with contextlib.suppress(Exception):
            observed_terms.update(system.terms().values())
            current_leader = system.leader()
            if current_leader is not None:
                leaders_seen.add(current_leader.name)
        time.sleep(0.25)
    stop.set()
    for thread in writers:
        thread.join(timeout=WRITE_TIMEOUT + 2)
    requests = 0
    for popen in load:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=10)
        system.processes.kill(popen)
    for member in system.members:
        requests += wrk_requests(
            system.processes.log_dir / f"wrk-{system.workdir.name}-{member.name}.log"
        )
    terms_after = system.terms()
    spurious = len(observed_terms) > 1 or terms_after != terms_before
    outcome = {
        "seconds": seconds,
        "concurrent_config_writers": len(writers),
        "config_writes_ok": counts["ok"],
        "config_writes_failed": counts["failed"],
        "http_requests": requests if wrk else None,
        "terms_before": terms_before,
        "terms_after": terms_after,
        "leaders_seen": sorted(leaders_seen),
        "spurious_election": spurious,
    }
    log(
        f"   stability {seconds:g} s: {counts['ok']} config writes ok, {counts['failed']} failed,"
        f" {requests} HTTP requests, terms {sorted(observed_terms)}"
        f" -> {'SPURIOUS ELECTION' if spurious else 'no election'}"
    )
    return outcome


def wrk_requests(path: Path) -> int:
    """The request count from wrk's summary line ("N requests in ...")."""
    if not path.exists():
        return 0
    for line in path.read_text(errors="replace").splitlines():
        words = line.split()
        if len(words) > 1 and words[1] == "requests" and words[0].isdigit():
            return int(words[0])
    return 0


# --------------------------------------------------------------------------- report


def format_latency(summary: dict | None) -> str:
    if not summary:
        return "-"
    return f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f} ms"


def format_failover(failover: dict) -> str:
    if failover["median_s"] is None:
        return f"failed ({failover['failed']} of {len(failover['trials'])})"
    shown = (
        f"{failover['median_s']:.2f} s ({failover['min_s']:.2f}-{failover['max_s']:.2f},"
        f" n={len(failover['trials']) - failover['failed']})"
    )
    if failover["failed"]:
        shown += f", {failover['failed']} failed"
    return shown


def results_table(results: dict) -> str:
    measured_stability = any("stability" in entry for entry in results["systems"])
    header = "| system | Raft settings | commit p50 / p99 via leader | via follower |"
    header += " failover median (min-max, trials) |"
    rule = "|:---|:---|---:|---:|---:|"
    if measured_stability:
        header += " elections under load (none killed) |"
        rule += ":---|"
    lines = [header, rule]
    for entry in results["systems"]:
        if "error" in entry:
            lines.append(f"| {entry['system']} | {entry['settings']} | failed: {entry['error']} |")
            continue
        row = (
            f"| {entry['system']} | {entry['settings']} | "
            f"{format_latency(entry.get('latency_via_leader'))} | "
            f"{format_latency(entry.get('latency_via_follower'))} | "
            f"{format_failover(entry['failover'])} |"
        )
        if measured_stability:
            stability = entry.get("stability")
            if stability is None:
                row += " not measured |"
            else:
                seen = "SPURIOUS" if stability["spurious_election"] else "none"
                row += f" {seen} in {stability['seconds']:g} s |"
        lines.append(row)
    return "\n".join(lines)


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        version = subprocess.run(
            [shutil.which("etcd") or "etcd", "--version"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        facts["etcd"] = version.stdout.splitlines()[0].split()[-1]
    with contextlib.suppress(Exception):
        from importlib.metadata import version as package_version

        facts["pysyncobj"] = package_version("pysyncobj")
    return facts


def docs_section(results: dict) -> str:
    machine = results["machine"]
    facts = f"{machine.get('cpus')} CPUs"
    if "cpu_model" in machine:
        facts += f", {machine['cpu_model']}"
    facts += f", etcd {machine.get('etcd', '?')}, pysyncobj {machine.get('pysyncobj', '?')}"
    paragraphs = [
        "Config commit latency and leader failover of a 3-core Dispa cluster beside a 3-member"
        " etcd cluster, all on 127.0.0.1 of one machine, one system at a time (no CPU pinning:"
        " the members share the CPUs).",
        "- **Commit latency**: sequential writes of small distinct configs (about 200 bytes of"
        " JSON) over one keep-alive connection, each acknowledged only once committed:"
        " `PUT /api/v1/config` on Dispa, `POST /v3/kv/put` (etcd's JSON gateway) on etcd;"
        " sent to the leader, then to a follower (which forwards).",
        "- **Failover**: `kill -9` of the leader, then a new write every 50 ms, round-robin to"
        " the survivors, each in parallel and waiting up to 5 s: the time from the kill to the"
        " first acknowledgement. The killed member is restarted between trials, and each trial"
        " starts after the cluster has stood idle for longer than its Raft connection timeout,"
        " as a long-running one has.",
        "- etcd is measured with its defaults and with Raft timings close to Dispa's. etcd"
        " fsyncs its WAL before acknowledging; Dispa's journal (pysyncobj) is written to a"
        " memory-mapped file without fsync, so it survives `kill -9` of every core but not a"
        " power loss of a majority at once.",
        f"Command: `{results['command']}`, {results['date']} ({facts}).",
    ]
    wrapped = [
        textwrap.fill(
            text,
            width=90,
            subsequent_indent="  " if text.startswith("- ") else "",
            break_on_hyphens=False,
        )
        for text in paragraphs
    ]
    return "\n".join(
        [
            DOCS_BEGIN,
            "",
            "## Cluster",
            "",
            wrapped[0],
            "",
            *wrapped[1:4],
            "",
            wrapped[4],
            "",
            results_table(results),
            "",
            "Raw results: `bench/results/cluster.json`.",
            "",
            DOCS_END,
        ]
    )


def write_docs(results: dict) -> None:
    text = DOCS_FILE.read_text() if DOCS_FILE.exists() else "# Benchmarks\n"
    section = docs_section(results)
    if DOCS_BEGIN in text and DOCS_END in text:
        before, rest = text.split(DOCS_BEGIN, 1)
        after = rest.split(DOCS_END, 1)[1]
        text = before + section + after
    elif RUN_PY_DOCS_MARKER in text:
        before, after = text.split(RUN_PY_DOCS_MARKER, 1)
        text = before.rstrip() + "\n\n" + section + "\n\n" + RUN_PY_DOCS_MARKER + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS_FILE.write_text(text)
    log(f"updated {DOCS_FILE.relative_to(REPO)}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Config commit latency and leader failover: Dispa cores beside etcd."
    )
    parser.add_argument(
        "--writes",
        type=int,
        default=200,
        help="sequential writes per latency measurement (default: 200)",
    )
    parser.add_argument(
        "--failover-trials", type=int, default=5, help="kill -9 trials per system (default: 5)"
    )
    parser.add_argument(
        "--raft-timings",
        nargs="+",
        type=parse_timings,
        default=[None],
        metavar="MIN/MAX/HEARTBEAT/CONN|default",
        help="Dispa Raft settings to measure, in seconds (default: default)",
    )
    parser.add_argument("--no-etcd", action="store_true", help="measure Dispa only")
    parser.add_argument(
        "--stability",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also load each Dispa cluster this long and watch for elections",
    )
    parser.add_argument(
        "--stability-writers",
        type=int,
        default=4,
        metavar="N",
        help="concurrent config writers per core during --stability (default: 4)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_FILE,
        help=f"results file (default: {RESULTS_FILE.relative_to(REPO)})",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="update the Cluster section of docs/benchmarks.md"
    )
    return parser.parse_args(argv)  # fmt: skip


def on_signal(number, frame) -> None:
    raise Interrupted(signal.Signals(number).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.no_etcd and shutil.which("etcd") is None:
        log("etcd is not installed (apt-get install etcd-server), or run with --no-etcd")
        return 1
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="dispa-bench-cluster-"))
    processes = ChildProcesses(workdir)
    serials = Serials()
    arguments = sys.argv[1:] if argv is None else argv
    results: dict[str, Any] = {
        "command": shlex.join(["bench/cluster.py", *arguments]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(),
        "systems": [],
    }
    log(f"working directory (data, logs): {workdir}")
    systems: list[System] = [
        DispaCluster(processes, workdir / f"dispa-{index}", timings)
        for index, timings in enumerate(args.raft_timings)
    ]
    if not args.no_etcd:
        systems += [
            EtcdCluster(processes, workdir / "etcd-default", 100, 1000, "etcd"),
            EtcdCluster(processes, workdir / "etcd-tuned", 50, 300, "etcd (tuned)"),
        ]
    status = 0
    try:
        for system in systems:
            try:
                results["systems"].append(measure_system(system, args, serials))
            except Interrupted:
                raise
            except Exception as error:
                # One system failing (say, a core that does not start) leaves the others
                # worth measuring; the run still exits 1.
                log(f"{system.label} failed: {type(error).__name__}: {error} (logs in {workdir})")
                results["systems"].append(
                    {"system": system.label, "settings": system.settings, "error": str(error)}
                )
                status = 1
            finally:
                system.stop()
    except Interrupted as signal_name:
        log(f"interrupted ({signal_name}): stopping everything")
        status = 130
    finally:
        processes.kill_all()
    if not results["systems"]:
        return status or 1
    print(results_table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    log(f"results written to {args.output}")
    if args.write_docs and status == 0:
        write_docs(results)
    if status == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
