"""Real processes on 127.0.0.1 for the integration tests: the gateway, upstreams, clients.

The gateway runs as ``python -m dispa run -c FILE``, upstreams as their own processes
(``dispa.runtime.demo_upstream`` and the misbehaving ``upstreams/faulty.py``). Ports come
from binding port 0; every wait is bounded in time; every process a fixture starts is
stopped (SIGTERM, then SIGKILL of its process group) when that fixture ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support import async_wait_until, free_ports, wait_until  # noqa: F401 (re-exported)

REPO = Path(__file__).resolve().parents[2]
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
FAULTY_UPSTREAM = Path(__file__).resolve().parent / "upstreams" / "faulty.py"

READY_TIMEOUT = 10.0
HOST = "127.0.0.1"


# ---------------------------------------------------------------- ports and waiting


def free_port() -> int:
    return free_ports(1)[0]


def http_get(url: str, *, timeout: float = 5.0, method: str = "GET") -> tuple[int, bytes]:
    """A plain blocking request, for admin endpoints and control calls (not the data plane)."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def can_connect(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes


class Process:
    """A child process with its output in files; in its own process group."""

    def __init__(self, argv: list[str], log_dir: Path, name: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=REPO,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def signal(self, number: int) -> None:
        if self.alive():
            self.popen.send_signal(number)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to the whole group (workers included) if it lingers."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # The group id is our child's pid: this reaches only processes it started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5.0)


class Processes:
    """Everything one fixture started, stopped together at its teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, argv: list[str], name: str) -> Process:
        process = Process(argv, self.log_dir, f"{name}-{len(self.started)}")
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()

    # -- conveniences --------------------------------------------------------------

    def demo_upstream(self, name: str) -> Upstream:
        port = free_port()
        argv = [PYTHON, "-m", "dispa.runtime.demo_upstream", "--port", str(port), "--name", name]
        upstream = Upstream(self.start(argv, f"upstream-{name}"), name, port, "/healthz")
        upstream.wait_ready()
        return upstream

    def faulty_upstream(self, name: str, *, always_status: int = 0) -> Upstream:
        port = free_port()
        argv = [PYTHON, str(FAULTY_UPSTREAM), "--port", str(port), "--name", name]
        if always_status:
            argv += ["--always-status", str(always_status)]
        upstream = Upstream(self.start(argv, f"faulty-{name}"), name, port, "/stats")
        upstream.wait_ready()
        return upstream

    def gateway(
        self, config: dict | str, workdir: Path, *, args: tuple[str, ...] = (), ready: bool = True
    ) -> Gateway:
        gateway = Gateway(self, config, workdir, args)
        if ready:
            gateway.wait_ready()
        return gateway


class Upstream:
    def __init__(self, process: Process, name: str, port: int, probe_path: str) -> None:
        self.process = process
        self.name = name
        self.port = port
        self.address = f"{HOST}:{port}"
        self._probe_path = probe_path

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise AssertionError(f"upstream {self.name} exited: {self.process.stderr_text()}")
            return http_get(self.url(self._probe_path), timeout=1.0)[0] == 200

        wait_until(ready, timeout=READY_TIMEOUT, what=f"upstream {self.name} to listen")

    def set_health(self, up: bool) -> None:
        """Demo upstream: make its /healthz answer 200 (up) or 503 (down)."""
        status, _ = http_get(self.url(f"/admin/health/{'up' if up else 'down'}"), method="POST")
        assert status == 200

    def stats(self) -> dict:
        """Demo upstream: {"requests"}; faulty upstream: {"connections", "requests"}."""
        path = "/admin/stats" if self._probe_path == "/healthz" else "/stats"
        return json.loads(http_get(self.url(path))[1])


# ---------------------------------------------------------------- the gateway


def make_config(
    upstreams: list[dict],
    routes: list[dict],
    *,
    listeners: list[dict] | None = None,
    **top: Any,
) -> dict:
    """A gateway config on fresh ports: one listener 'public' unless ``listeners`` is given
    (each without an address gets a free port), the admin API on its own port, and no
    access log unless ``access_log`` is passed."""
    listeners = listeners or [{"name": "public"}]
    # Taken in one call: ports asked for one by one may repeat (the kernel can hand out a
    # just-released port again), and a listener on the admin's port is refused.
    ports = free_ports(len(listeners) + 1)
    admin_port = ports.pop()
    listeners = [
        listener if "address" in listener else {**listener, "address": f"{HOST}:{port}"}
        for listener, port in zip(listeners, ports, strict=True)
    ]
    config = {
        "listeners": listeners,
        "upstreams": upstreams,
        "routes": routes,
        "admin": {"address": f"{HOST}:{admin_port}"},
        "access_log": {"enabled": False},
    }
    config.update(top)
    return config


class Gateway:
    """``dispa run`` as a subprocess, with its config file, admin API and logs."""

    def __init__(
        self, processes: Processes, config: dict | str, workdir: Path, args: tuple[str, ...]
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config_path = workdir / "gateway.yaml"
        self.write_config(config)
        self.process = processes.start(
            [PYTHON, "-m", "dispa", "run", "-c", str(self.config_path), *args], "gateway"
        )
        self.pid = self.process.pid

    # -- config --------------------------------------------------------------------

    def write_config(self, config: dict | str) -> None:
        """Replace the config file in one rename, so a watcher never reads half of it."""
        text = config if isinstance(config, str) else json.dumps(config, indent=2)
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = None  # a broken file on purpose: keep the ports we know
        if isinstance(parsed, dict) and "listeners" in parsed and "admin" in parsed:
            self.config = parsed
            self.ports = {
                listener["name"]: int(listener["address"].rpartition(":")[2])
                for listener in parsed["listeners"]
            }
            self.port = next(iter(self.ports.values()))
            self.admin_port = int(parsed["admin"]["address"].rpartition(":")[2])
        scratch = self.config_path.with_suffix(".tmp")
        scratch.write_text(text)
        os.replace(scratch, self.config_path)

    def reload(self, config: dict | str) -> None:
        self.write_config(config)
        self.process.signal(signal.SIGHUP)

    # -- readiness and admin -------------------------------------------------------

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise AssertionError(
                    f"gateway exited with {self.process.popen.returncode}:\n"
                    + self.process.stderr_text()
                )
            return self.admin_status("/readyz") == 200

        try:
            wait_until(ready, timeout=timeout, what="the gateway's /readyz")
        except AssertionError as error:
            raise AssertionError(
                f"{error}; gateway stderr:\n{self.process.stderr_text()}"
            ) from None

    def url(self, path: str = "/", listener: str | None = None) -> str:
        port = self.ports[listener] if listener else self.port
        return f"http://{HOST}:{port}{path}"

    def admin_status(self, path: str) -> int:
        return http_get(f"http://{HOST}:{self.admin_port}{path}", timeout=2.0)[0]

    def admin_json(self, path: str) -> dict:
        status, body = http_get(f"http://{HOST}:{self.admin_port}{path}")
        assert status == 200, (path, status, body)
        return json.loads(body)

    def revision(self) -> int:
        return self.admin_json("/api/v1/config")["revision"]

    def endpoints(self, upstream: str) -> dict[str, dict]:
        """The admin's view of one upstream's endpoints, by address."""
        for document in self.admin_json("/api/v1/upstreams")["upstreams"]:
            if document["name"] == upstream:
                return {e["address"]: e for e in document["endpoints"]}
        raise AssertionError(f"no upstream {upstream} in /api/v1/upstreams")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
        status, body = http_get(f"http://{HOST}:{self.admin_port}/metrics")
        assert status == 200
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def local_replies(self, reason: str) -> float:
        return self.metric("dispa_local_replies_total", reason=reason)

    # -- process -------------------------------------------------------------------

    def stderr(self) -> str:
        return self.process.stderr_text()

    def vm_hwm_kib(self) -> int:
        """Peak resident memory of the gateway process (VmHWM), in KiB."""
        return self._proc_status_kib("VmHWM:")

    def vm_rss_kib(self) -> int:
        """Resident memory of the gateway process now (VmRSS), in KiB."""
        return self._proc_status_kib("VmRSS:")

    def _proc_status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        raise AssertionError(f"no {field} line in /proc/{self.pid}/status")


# ---------------------------------------------------------------- raw HTTP/1.1


class RawResponse(NamedTuple):
    status: int
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def read_response(stream, *, head_request: bool = False) -> RawResponse:
    """One response from a buffered socket file: content-length, chunked or close-ended."""
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    status = int(status_line.split()[1])
    headers = []
    while True:
        line = stream.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    fields = dict(headers)
    if head_request or status in (204, 304) or 100 <= status < 200:
        return RawResponse(status, headers, b"")
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int(stream.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while stream.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += stream.read(size)
            stream.readline()
        return RawResponse(status, headers, bytes(body))
    if "content-length" in fields:
        return RawResponse(status, headers, stream.read(int(fields["content-length"])))
    return RawResponse(status, headers, stream.read())


@contextlib.contextmanager
def raw_connection(port: int, timeout: float = 5.0) -> Iterator[tuple[socket.socket, Any]]:
    """A client socket and a buffered reader over it."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.settimeout(timeout)
    stream = sock.makefile("rb")
    try:
        yield sock, stream
    finally:
        stream.close()
        sock.close()


def connection_closed(sock: socket.socket, timeout: float = 3.0) -> bool:
    """True if the peer closed (EOF or reset) within ``timeout`` with nothing more to read."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def received_headers(document: bytes | str | dict) -> dict[str, str]:
    """What a demo upstream's /headers says it received, with lower-cased names."""
    if not isinstance(document, dict):
        document = json.loads(document)
    return {name.lower(): value for name, value in document["headers"].items()}


def curl(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--noproxy", "*", *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    group = Processes(tmp_path / "logs")
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    group = Processes(tmp_path_factory.mktemp("module-logs"))
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="session")
def session_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    group = Processes(tmp_path_factory.mktemp("session-logs"))
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="session")
def upstream_a(session_processes: Processes) -> Upstream:
    """A demo upstream shared by the whole session: never flip its health."""
    return session_processes.demo_upstream("alpha")


@pytest.fixture(scope="session")
def upstream_b(session_processes: Processes) -> Upstream:
    """A second shared demo upstream: never flip its health."""
    return session_processes.demo_upstream("beta")


@pytest.fixture(scope="session")
def faulty(session_processes: Processes) -> Upstream:
    """The shared misbehaving upstream (see upstreams/faulty.py)."""
    return session_processes.faulty_upstream("faulty")
