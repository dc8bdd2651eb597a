"""The drill's processes: cores, edges and upstreams, each in its host's namespace.

Starts them, waits (bounded) until the cores agree on a leader and the edges serve the
config, kills them with SIGKILL and starts them again on the same data directory, and
reads each node's status from its admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from chaos import layout
from chaos.topology import Topology

READY_TIMEOUT = 40.0
STATUS_TIMEOUT = aiohttp.ClientTimeout(total=0.8)


class DrillError(Exception):
    """The drill could not set up or run; the message says which node and where its log is."""


class Nodes:
    def __init__(self, topology: Topology, workdir: Path) -> None:
        self.topology = topology
        self.workdir = workdir
        self.hosts = topology.hosts
        self.popens: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()
        # Where the cores reach each region's upstream: its own address, or a relay's.
        self.endpoints = {
            h.region: f"{h.address}:{layout.UPSTREAM_PORT}"
            for h in self.hosts.values()
            if h.role == "upstream"
        }
        # Where each edge reaches the cores' admin APIs, when not directly (relays).
        self.edge_cores: dict[str, list[str]] = {}
        self.session: aiohttp.ClientSession | None = None
        (workdir / "logs").mkdir(parents=True, exist_ok=True)

    def names(self, role: str) -> list[str]:
        return [h.name for h in self.hosts.values() if h.role == role]

    def address(self, name: str, port: int) -> str:
        return f"{self.hosts[name].address}:{port}"

    def admin(self, name: str) -> str:
        port = layout.CORE_ADMIN_PORT if self.hosts[name].role == "core" else layout.EDGE_ADMIN_PORT
        return self.address(name, port)

    def listener(self, name: str) -> str:
        return self.address(name, layout.LISTENER_PORT)

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    # ---------------------------------------------------------------- processes

    def _command(self, name: str) -> list[str]:
        host = self.hosts[name]
        if host.role == "upstream":
            return [
                sys.executable,
                "-m",
                "dispa.runtime.demo_upstream",
                "--host",
                host.address,
                "--port",
                str(layout.UPSTREAM_PORT),
                "--name",
                name,
            ]
        config_path = self.workdir / f"{name}.yaml"
        if not config_path.exists():
            data_dir = str(self.workdir / "data" / name)
            if host.role == "core":
                config = layout.core_file(self.hosts, name, data_dir, self.topology.gateway_address)
            else:
                config = layout.edge_file(self.hosts, name, data_dir, self.edge_cores.get(name))
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [sys.executable, "-m", "dispa", host.role, "-c", str(config_path)]

    def start(self, name: str) -> None:
        with open(self.log_path(name), "ab") as log:
            log.write(f"---- start at {time.strftime('%H:%M:%S')} ----\n".encode())
        self.popens[name] = self.topology.spawn(name, self._command(name), self.log_path(name))
        self.killed.discard(name)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown code runs, as when a machine dies."""
        process = self.popens.get(name)
        self.killed.add(name)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)

    def alive(self, name: str) -> bool:
        process = self.popens.get(name)
        return process is not None and process.poll() is None

    def crashed(self) -> list[str]:
        """Nodes that exited although the drill did not kill them."""
        return [n for n, p in self.popens.items() if p.poll() is not None and n not in self.killed]

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_path(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # ---------------------------------------------------------------- bring-up

    async def start_all(self, progress) -> None:
        self.session = aiohttp.ClientSession(timeout=STATUS_TIMEOUT)
        progress("starting 3 upstreams, 3 cores (eu, us, ap) in their namespaces ...")
        for name in self.names("upstream") + self.names("core"):
            self.start(name)
        leader = await self.wait_leader(READY_TIMEOUT)
        progress(f"cores agree on leader {leader}; applying the drill's config ...")
        await self.apply_initial_config()
        progress("starting 2 edges (eu, us) ...")
        for name in self.names("edge"):
            self.start(name)
        await self.wait_edges_serving(READY_TIMEOUT)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _check_crashes(self) -> None:
        crashed = self.crashed()
        if crashed:
            name = crashed[0]
            raise DrillError(
                f"{name} exited by itself (status {self.popens[name].returncode}); "
                f"its log ({self.log_path(name)}) ends with:\n{self.log_tail(name)}"
            )

    async def wait_leader(self, timeout: float, exclude: str | None = None) -> str:
        """The core a majority names as leader, once there is one (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_crashes()
            statuses = await self.core_statuses()
            leader = majority_leader(statuses, self.raft_names())
            if leader is not None and leader != exclude:
                return leader
            await asyncio.sleep(0.2)
        raise DrillError(
            f"the cores did not agree on a leader within {timeout:.0f} s; see the logs in "
            f"{self.workdir / 'logs'}"
        )

    async def apply_initial_config(self) -> int:
        config = layout.shared_config(self.endpoints, "initial")
        deadline = time.monotonic() + READY_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            for core in self.names("core"):
                try:
                    async with self.session.put(
                        f"http://{self.admin(core)}/api/v1/config",
                        json=config,
                        headers={"X-Dispa-Note": "initial"},
                        timeout=aiohttp.ClientTimeout(total=7.0),
                    ) as reply:
                        body = await reply.json(content_type=None)
                        if reply.status == 200 and body.get("ok"):
                            return body["revision"]
                        last = f"{core} answered {reply.status}: {body}"
                except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                    last = f"{core}: {type(error).__name__}"
            await asyncio.sleep(0.5)
        raise DrillError(f"the drill's config could not be applied ({last})")

    async def wait_edges_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_crashes()
            serving = 0
            for edge in self.names("edge"):
                status = await self.get_json(self.admin(edge), "/api/v1/node")
                serving += bool(status and status.get("applied_revision", 0) > 0)
            if serving == len(self.names("edge")):
                return
            await asyncio.sleep(0.3)
        raise DrillError(
            f"the edges did not take the config within {timeout:.0f} s; see the logs in "
            f"{self.workdir / 'logs'}"
        )

    # ---------------------------------------------------------------- status

    def raft_names(self) -> dict[str, str]:
        """Raft address -> core name."""
        return {self.address(n, layout.RAFT_PORT): n for n in self.names("core")}

    async def get_json(self, address: str, path: str) -> dict | None:
        try:
            async with self.session.get(f"http://{address}{path}") as reply:
                if reply.status != 200:
                    return None
                return await reply.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
            return None

    async def core_statuses(self) -> dict[str, dict | None]:
        """Each core's GET /api/v1/node (None when it does not answer)."""
        cores = self.names("core")
        answers = await asyncio.gather(
            *(self.get_json(self.admin(core), "/api/v1/node") for core in cores)
        )
        return dict(zip(cores, answers, strict=True))


def majority_leader(statuses: dict[str, dict | None], raft_names: dict[str, str]) -> str | None:
    """The core that a majority of all cores name as leader while in quorum, or None.

    A leader cut off from the others still calls itself leader for a while; what counts is
    the leader the majority follows."""
    votes: dict[str, int] = {}
    for status in statuses.values():
        if status and status.get("has_quorum") and status.get("leader"):
            name = raft_names.get(status["leader"])
            if name is not None:
                votes[name] = votes.get(name, 0) + 1
    for name, count in votes.items():
        if count > len(statuses) // 2:
            return name
    return None
