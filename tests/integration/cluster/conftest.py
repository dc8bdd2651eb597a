"""Three real ``dispa core`` processes on 127.0.0.1 for the cluster integration tests.

Every core is ``python -m dispa core -c FILE`` with its config file, data directory and
logs under the test's tmp_path, on ports the kernel just handed out (Raft, data-plane
listener, admin API). A core runs in its own session so ``kill -9`` reaches exactly it.
Every wait is bounded; every process a fixture started is killed at its teardown, even
when the test failed half-way.

The helpers talk to cores with blocking ``http.client`` calls: the tests are about what a
client sees (status, body, revision), and a fresh connection per call means a killed core
never leaves a half-dead keep-alive connection behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import free_ports, wait_until

REPO = Path(__file__).resolve().parents[3]
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
HOST = "127.0.0.1"
SECRET = "cluster-integration-test-secret"
CORE_COUNT = 3
# Three interpreters importing dispa at once on a busy 2-CPU machine take a few seconds.
READY_TIMEOUT = 30.0
# The server gives up on a commit after 5 s (store.WRITE_TIMEOUT); wait a little longer so
# its own answer (503, maybe_committed) reaches us rather than our timeout.
WRITE_CLIENT_TIMEOUT = 6.5
PROBE_PATH = "/probe"


# ---------------------------------------------------------------- ports and waiting


# ---------------------------------------------------------------- HTTP


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON when the server sent JSON, else text
    headers: dict[str, str]


def http_call(
    address: str,
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Reply:
    """One request on a fresh connection; raises OSError (refused, reset, timeout)."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        payload = body.encode() if isinstance(body, str) else body
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        reply_headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()
    text = raw.decode(errors="replace")
    parsed: Any = text
    if reply_headers.get("content-type", "").startswith("application/json"):
        parsed = json.loads(text)
    return Reply(response.status, parsed, reply_headers)


def probe_config(body: str) -> dict:
    """The smallest shared config whose effect is visible on the data plane: GET /probe
    answers ``body``. Distinct bodies make distinct revisions."""
    return {
        "routes": [
            {
                "name": "probe",
                "match": {"host": "*", "path_exact": PROBE_PATH},
                "direct_response": {"status": 200, "body": body},
            }
        ],
        "access_log": {"enabled": False},
    }


def probe_body_of(config: dict) -> str:
    return config["routes"][0]["direct_response"]["body"]


# ---------------------------------------------------------------- one core


class CoreProcess:
    """One ``dispa core`` process and everything that survives its restarts: the config
    file, the ports and the data directory."""

    def __init__(
        self,
        node_id: str,
        workdir: Path,
        *,
        raft_port: int,
        listener_port: int,
        admin_port: int,
        peer_raft_ports: list[int],
        raft_settings: dict | None = None,
        secret: str | None = SECRET,
    ) -> None:
        self.node_id = node_id
        self.workdir = workdir
        self.raft_address = f"{HOST}:{raft_port}"
        self.listener_address = f"{HOST}:{listener_port}"
        self.admin_address = f"{HOST}:{admin_port}"
        self.data_dir = workdir / "data"
        self.config_path = workdir / "core.yaml"
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        workdir.mkdir(parents=True, exist_ok=True)
        node: dict[str, Any] = {"id": node_id, "region": "test", "data_dir": str(self.data_dir)}
        if secret is not None:
            node["secret"] = secret
        self.config = {
            "node": node,
            "raft": {
                "address": self.raft_address,
                "peers": [f"{HOST}:{port}" for port in peer_raft_ports],
                **(raft_settings or {}),
            },
            "listeners": [{"name": "public", "address": self.listener_address}],
            "admin": {"address": self.admin_address},
        }
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.popen: subprocess.Popen | None = None
        self.starts = 0
        self.killed_on_purpose = False

    # -- process ---------------------------------------------------------------------

    def start(self, env: dict[str, str] | None = None) -> None:
        assert not self.alive(), f"{self.node_id} is already running"
        self.starts += 1
        self.killed_on_purpose = False
        # Append, so the logs of every incarnation of this core are kept for a failure report.
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            err.write(f"---- start #{self.starts} ----\n".encode())
            err.flush()
            self.popen = subprocess.Popen(
                [PYTHON, "-m", "dispa", "core", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=REPO,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def crashed(self) -> bool:
        """Exited although nobody killed it."""
        return self.popen is not None and not self.alive() and not self.killed_on_purpose

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs, exactly like a crashed machine."""
        if self.popen is None:
            return
        self.killed_on_purpose = True
        # The group id is our child's pid (start_new_session): this reaches only it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5.0)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self.kill()

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    # -- admin API and data plane ------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        return http_call(self.admin_address, method, path, **kwargs)

    def get_json(self, path: str, timeout: float = 5.0) -> dict:
        reply = self.call("GET", path, timeout=timeout)
        assert reply.status == 200, (self.node_id, path, reply.status, reply.body)
        return reply.body

    def node_status(self, timeout: float = 2.0) -> dict:
        return self.get_json("/api/v1/node", timeout=timeout)

    def put_config(
        self, config: dict, *, if_match: int | None = None, timeout: float = WRITE_CLIENT_TIMEOUT
    ) -> Reply:
        headers = {"Content-Type": "application/json"}
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        return self.call(
            "PUT", "/api/v1/config", body=json.dumps(config), headers=headers, timeout=timeout
        )

    def revision_config(self, revision: int) -> dict | None:
        """The config this core holds for ``revision`` (None when not in its history)."""
        reply = self.call("GET", f"/api/v1/config/{revision}")
        if reply.status == 404:
            return None
        assert reply.status == 200, (self.node_id, revision, reply.status, reply.body)
        return reply.body["config"]

    def history_configs(self) -> dict[int, dict]:
        """Every revision in this core's history with its config, read one by one through
        GET /api/v1/config/{revision} as a client would."""
        history = self.get_json("/api/v1/config/history")["history"]
        configs = {}
        for entry in history:
            config = self.revision_config(entry["revision"])
            assert config is not None, (self.node_id, entry["revision"], "listed but missing")
            configs[entry["revision"]] = config
        return configs

    def probe(self, timeout: float = 2.0) -> Reply:
        """GET /probe on this core's data-plane listener."""
        return http_call(self.listener_address, "GET", PROBE_PATH, timeout=timeout)


# ---------------------------------------------------------------- the cluster


class Cluster:
    """Three cores that know each other; started together, killed together."""

    def __init__(
        self, workdir: Path, raft_settings: dict | None = None, count: int = CORE_COUNT
    ) -> None:
        ports = free_ports(3 * count)
        raft_ports, listener_ports, admin_ports = (
            ports[:count],
            ports[count : 2 * count],
            ports[2 * count :],
        )
        self.workdir = workdir
        self.cores = [
            CoreProcess(
                f"core-{index + 1}",
                workdir / f"core-{index + 1}",
                raft_port=raft_ports[index],
                listener_port=listener_ports[index],
                admin_port=admin_ports[index],
                peer_raft_ports=[port for port in raft_ports if port != raft_ports[index]],
                raft_settings=raft_settings,
            )
            for index in range(count)
        ]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        for core in self.cores:
            core.start()
        self.wait_ready(timeout)

    def kill_all(self) -> None:
        for core in self.cores:
            core.kill()

    def stop_all(self) -> None:
        """SIGTERM to every core at once, then wait for each (SIGKILL if it lingers)."""
        for core in self.cores:
            if core.alive():
                core.popen.send_signal(signal.SIGTERM)
        for core in self.cores:
            core.stop()

    def alive_cores(self) -> list[CoreProcess]:
        return [core for core in self.cores if core.alive()]

    def core(self, node_id: str) -> CoreProcess:
        return next(core for core in self.cores if core.node_id == node_id)

    def by_raft_address(self, address: str | None) -> CoreProcess | None:
        return next((core for core in self.cores if core.raft_address == address), None)

    # -- status ------------------------------------------------------------------------

    def cluster_status(self) -> dict:
        """GET /api/v1/cluster from the leader, once the cluster is ready. The leader's
        view, not any core's: a follower's local state may lag the latest commit by a
        heartbeat, while the leader (or the core that acknowledged a write) has applied it."""
        return self.wait_ready()

    def ready_status(self) -> dict | None:
        """The cluster status once every running core agrees on one leader, that leader
        has quorum, and all members are registered and the running ones reachable."""
        alive = self.alive_cores()
        statuses = [core.node_status() for core in alive]
        leaders = {status["leader"] for status in statuses}
        if len(leaders) != 1 or None in leaders:
            return None
        leader = self.by_raft_address(leaders.pop())
        if leader is None or not leader.alive():
            return None
        status = leader.get_json("/api/v1/cluster", timeout=3.0)
        reachable = {entry["id"] for entry in status["cores"] if entry.get("reachable")}
        registered = {entry["id"] for entry in status["cores"]}
        if not status["has_quorum"] or registered != {core.node_id for core in self.cores}:
            return None
        if reachable != {core.node_id for core in alive}:
            return None
        return status

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict:
        """The leader's cluster status once ready; fails at once if a core crashed (exited
        without being killed), with its log, rather than waiting out the timeout."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            for core in self.cores:
                if core.crashed():
                    raise AssertionError(
                        f"{core.node_id} exited with {core.popen.returncode}:\n"
                        + core.stderr_text()[-3000:]
                    )
            try:
                status = self.ready_status()
            except (OSError, http.client.HTTPException, AssertionError, ValueError) as error:
                status, last_error = None, error
            if status:
                return status
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for a leader and all cores"
                    f" (last error: {last_error!r})\n{self.logs_tail()}"
                )
            time.sleep(0.1)

    def leader(self) -> CoreProcess:
        status = self.wait_ready()
        leader = self.by_raft_address(status["leader"])
        assert leader is not None
        return leader

    def followers(self) -> list[CoreProcess]:
        leader = self.leader()
        return [core for core in self.alive_cores() if core is not leader]

    def wait_applied(
        self, revision: int, cores: list[CoreProcess] | None = None, timeout: float = 10.0
    ) -> None:
        """Until every given (default: running) core has applied ``revision`` to its data
        plane, as its /api/v1/node reports."""
        targets = cores if cores is not None else self.alive_cores()

        def all_applied() -> bool:
            return all(core.node_status()["applied_revision"] >= revision for core in targets)

        wait_until(all_applied, timeout=timeout, what=f"revision {revision} applied everywhere")

    def logs_tail(self, characters: int = 2000) -> str:
        return "\n".join(
            f"--- {core.node_id} stderr (tail) ---\n{core.stderr_text()[-characters:]}"
            for core in self.cores
        )


# ---------------------------------------------------------------- a client writing in a loop


@dataclass
class WriteOutcome:
    index: int
    target: str  # node id of the core the write was sent to
    body: str  # the probe body, unique per write
    started: float  # time.monotonic()
    finished: float
    result: str  # "ok" | "failed" (certainly not committed) | "unknown" (may be committed)
    revision: int | None = None
    detail: str = ""


@dataclass
class ConfigWriter:
    """Writes distinct configs one after another, round-robin over the cores, and records
    what each write's client learned. Runs in a thread until stopped or bounded out."""

    cluster: Cluster
    max_writes: int
    max_seconds: float
    tag: str = "write"
    outcomes: list[WriteOutcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="config-writer", daemon=True)
        self._thread.start()

    def stop_and_join(self) -> list[WriteOutcome]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.max_seconds + 2 * WRITE_CLIENT_TIMEOUT)
            assert not self._thread.is_alive(), "the config writer did not stop"
        return self.outcomes

    def wait_acknowledged(self, count: int, timeout: float) -> None:
        wait_until(
            lambda: len(self.acknowledged()) >= count,
            timeout=timeout,
            what=f"{count} acknowledged writes",
        )

    def acknowledged(self) -> list[WriteOutcome]:
        return [outcome for outcome in list(self.outcomes) if outcome.result == "ok"]

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for index in range(self.max_writes):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return
            core = self.cluster.cores[index % len(self.cluster.cores)]
            outcome = write_once(core, index, f"{self.tag}-{index}\n")
            self.outcomes.append(outcome)
            if outcome.result != "ok":
                # Back off as a client would: during an election writes fail at once, and
                # without a pause the bounded loop spent all its writes inside that window.
                self._stop.wait(0.1)


def write_once(core: CoreProcess, index: int, body: str) -> WriteOutcome:
    """One PUT of a probe config, classified by what the client can know about it."""
    started = time.monotonic()

    def outcome(result: str, revision: int | None = None, detail: str = "") -> WriteOutcome:
        return WriteOutcome(
            index, core.node_id, body, started, time.monotonic(), result, revision, detail
        )

    try:
        reply = core.put_config(probe_config(body))
    except ConnectionRefusedError:
        return outcome("failed", detail="connection refused (core down)")
    except OSError as error:
        # Sent, but no answer (timeout, reset): the write may have been committed.
        return outcome("unknown", detail=f"{type(error).__name__}: {error}")
    if reply.status == 200 and isinstance(reply.body, dict) and reply.body.get("ok"):
        return outcome("ok", reply.body["revision"])
    detail = f"{reply.status} {reply.body}"
    if reply.status == 503 and isinstance(reply.body, dict) and reply.body.get("maybe_committed"):
        return outcome("unknown", detail=detail)
    return outcome("failed", detail=detail)


def first_commit_after(outcomes: list[WriteOutcome], moment: float) -> WriteOutcome | None:
    """The first acknowledged write that was sent after ``moment``."""
    after = [o for o in outcomes if o.result == "ok" and o.started >= moment]
    return min(after, key=lambda o: o.finished) if after else None


def assert_acknowledged_writes_durable(
    outcomes: list[WriteOutcome], cores: list[CoreProcess]
) -> dict[int, dict]:
    """Every acknowledged write is, on every given core, at the revision it was
    acknowledged with and with the content that was sent; revision numbers never fork (all
    cores hold the same config for each revision they share); acknowledged revisions grow
    with acknowledgement order (the writer is sequential); no write was applied twice.
    Returns the common history."""
    histories = {core.node_id: core.history_configs() for core in cores}
    revisions = set().union(*(history.keys() for history in histories.values()))
    for revision in sorted(revisions):
        contents = {
            node_id: json.dumps(history[revision], sort_keys=True)
            for node_id, history in histories.items()
            if revision in history
        }
        assert len(set(contents.values())) == 1, f"revision {revision} forked: {contents}"
    common = next(iter(histories.values()))
    for node_id, history in histories.items():
        assert history == common, f"{node_id} holds a different history"

    acknowledged = [o for o in outcomes if o.result == "ok"]
    revisions_in_order = [o.revision for o in acknowledged]
    assert revisions_in_order == sorted(set(revisions_in_order)), revisions_in_order
    for outcome in acknowledged:
        assert outcome.revision in common, f"acknowledged revision {outcome.revision} lost"
        assert probe_body_of(common[outcome.revision]) == outcome.body, (
            f"revision {outcome.revision} holds {probe_body_of(common[outcome.revision])!r},"
            f" but the write acknowledged with it sent {outcome.body!r}"
        )
    bodies = [probe_body_of(config) for config in common.values() if config["routes"]]
    written = {o.body for o in outcomes}
    applied_bodies = [body for body in bodies if body in written]
    assert len(applied_bodies) == len(set(applied_bodies)), "a write was applied twice"
    return common


def summarize(outcomes: list[WriteOutcome]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return ", ".join(f"{result} {count}" for result, count in sorted(counts.items()))


# ---------------------------------------------------------------- the CLI


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dispa", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """A factory of started 3-core clusters; each one is killed at the test's end."""
    clusters: list[Cluster] = []

    def make(raft_settings: dict | None = None, start: bool = True) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(clusters)}", raft_settings)
        clusters.append(cluster)
        if start:
            cluster.start()
        return cluster

    try:
        yield make
    finally:
        # SIGTERM first: a core that exits cleanly also saves its coverage data.
        for cluster in clusters:
            cluster.stop_all()


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    """A fresh, running 3-core cluster of its own, for tests that kill cores."""
    return make_cluster()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One running 3-core cluster for a whole module of tests that kill nothing; each test
    reads the revision it starts from rather than assuming one."""
    cluster = Cluster(tmp_path_factory.mktemp("shared-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop_all()
