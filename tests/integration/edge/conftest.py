"""Real ``dispa edge`` processes following a real 3-core cluster, on 127.0.0.1.

An edge runs as ``python -m dispa edge -c FILE`` in its own session (so ``kill -9``
reaches exactly it), with its config, data directory and logs under the test's tmp_path.
Every wait is bounded; every process is stopped at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.conftest import HOST, PYTHON, REPO, Cluster, Reply, http_call
from support import free_ports, wait_until

READY_TIMEOUT = 30.0


class EdgeProcess:
    def __init__(self, name: str, region: str, workdir: Path, cores: list[str], **extra) -> None:
        listener_port, admin_port = free_ports(2)
        self.name = name
        self.workdir = workdir
        self.listener_address = f"{HOST}:{listener_port}"
        self.admin_address = f"{HOST}:{admin_port}"
        self.data_dir = workdir / "data"
        self.config_path = workdir / "edge.yaml"
        self.stderr_path = workdir / "stderr.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config: dict[str, Any] = {
            "edge": {"name": name, "region": region, "data_dir": str(self.data_dir)},
            "cores": cores,
            "listeners": [{"name": "public", "address": self.listener_address}],
            "admin": {"address": self.admin_address},
            **extra,
        }
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.stderr_path, "ab") as err:
            self.popen = subprocess.Popen(
                [PYTHON, "-m", "dispa", "edge", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=REPO,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_until(self._answers, timeout=READY_TIMEOUT, what=f"edge {self.name} admin API")

    def _answers(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"edge {self.name} exited:\n{self.stderr_text()[-3000:]}")
        try:
            return self.call("GET", "/api/v1/node").status == 200
        except OSError:
            return False

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5.0)

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5.0)
        self.kill()

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        return http_call(self.admin_address, method, path, **kwargs)

    def status(self) -> dict:
        reply = self.call("GET", "/api/v1/node")
        assert reply.status == 200, reply
        return reply.body

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> Reply:
        return http_call(self.listener_address, "GET", path, headers=headers, timeout=timeout)

    def metric(self, name: str) -> float | None:
        for line in self.call("GET", "/metrics").body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait_revision(self, revision: int, timeout: float = 10.0) -> None:
        wait_until(
            lambda: self.status()["applied_revision"] >= revision,
            timeout=timeout,
            what=f"edge {self.name} at revision {revision}",
        )


@pytest.fixture
def edge_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture
def make_edge(tmp_path: Path) -> Iterator[Callable[..., EdgeProcess]]:
    edges: list[EdgeProcess] = []

    def make(cluster: Cluster, name: str = "edge-a", region: str = "eu", **extra) -> EdgeProcess:
        cores = [core.admin_address for core in cluster.cores]
        edge = EdgeProcess(name, region, tmp_path / name, cores, **extra)
        edges.append(edge)
        edge.start()
        return edge

    try:
        yield make
    finally:
        for edge in edges:
            edge.stop()
