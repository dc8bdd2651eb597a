"""A multi-host layout on one machine: one network namespace per host, each with its own
address on a bridge in the root namespace.

Every name a topology creates starts with its prefix (``dx`` and four random hex digits),
and the names are written to a state file *before* anything is created, so a drill killed
half-way (even with SIGKILL) leaves a record: the next drill removes the leftovers of every
topology whose owning process is gone, and never touches a live one's.

The namespaces get no default route and the root namespace does not forward, so hosts
reach only each other and the root's bridge address (where the drill's clients and relays
live). An ``unreachable`` route for the subnet stays in place until the very end, so
nothing sent to a host address can leave the machine even while the bridge goes away.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chaos import shell

STATE_DIR = Path("/run/dispa-drill")
PREFIX = "dx"
# Subnets 10.77.N.0/24 with N in this range; one is picked that nothing on the machine uses.
SUBNET_RANGE = range(100, 250)
STOP_GRACE = 5.0


@dataclass(frozen=True)
class Host:
    name: str  # e.g. core-eu
    role: str  # core | edge | upstream
    region: str
    address: str  # its IPv4 address
    namespace: str
    link: str  # the veth end in the root namespace, on the bridge


class Topology:
    """Create with ``Topology(specs)``, then ``create()``; ``destroy()`` removes everything
    (also used as a context manager). ``specs`` are (name, role, region) per host."""

    def __init__(self, specs: list[tuple[str, str, str]], state_dir: Path = STATE_DIR) -> None:
        self.state_dir = state_dir
        self.prefix = _unused_prefix()
        self.subnet = _free_subnet()
        network = ipaddress.ip_network(self.subnet)
        self.gateway_address = str(network[1])  # the root namespace's bridge address
        self.bridge = f"{self.prefix}-br"
        self.hosts = {
            name: Host(
                name,
                role,
                region,
                str(network[10 + index]),
                f"{self.prefix}-{name}",
                f"{self.prefix}-{index}",
            )
            for index, (name, role, region) in enumerate(specs)
        }
        self.processes: list[subprocess.Popen] = []
        self.created = False

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Topology:
        self.create()
        return self

    def __exit__(self, *exc_info) -> None:
        self.destroy()

    def create(self) -> None:
        cleanup_leftovers(self.state_dir)
        self._write_state()
        self.created = True
        try:
            shell.run(["ip", "route", "add", "unreachable", self.subnet, "metric", "4000"])
            shell.run(["ip", "link", "add", self.bridge, "type", "bridge"])
            shell.run(["ip", "addr", "add", f"{self.gateway_address}/24", "dev", self.bridge])
            shell.run(["ip", "link", "set", self.bridge, "up"])
            for host in self.hosts.values():
                self._add_host(host)
        except BaseException:
            self.destroy()
            raise

    def _add_host(self, host: Host) -> None:
        peer = f"{host.link}p"
        shell.run(["ip", "netns", "add", host.namespace])
        shell.run(["ip", "link", "add", host.link, "type", "veth", "peer", "name", peer])
        shell.run(["ip", "link", "set", peer, "netns", host.namespace])
        shell.run(["ip", "link", "set", host.link, "master", self.bridge, "up"])
        inside = ["ip", "-n", host.namespace]
        shell.run([*inside, "link", "set", peer, "name", "eth0"])
        shell.run([*inside, "addr", "add", f"{host.address}/24", "dev", "eth0"])
        shell.run([*inside, "link", "set", "eth0", "up"])
        shell.run([*inside, "link", "set", "lo", "up"])

    def destroy(self) -> None:
        """Stop every process started here and remove every namespace, link and route.
        Safe to call twice, and after a failed create."""
        if not self.created:
            return
        stop_processes(self.processes)
        _remove(self._state())
        self.created = False

    # ---------------------------------------------------------------- processes

    def spawn(self, host: str, args: list[str], log_path: Path, env: dict | None = None):
        """Start ``args`` inside the host's namespace, in its own session (so a kill -9
        reaches exactly it), with its output appended to ``log_path``."""
        namespace = self.hosts[host].namespace
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                shell.in_namespace(namespace, args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self.processes.append(process)
        return process

    def run_in(self, host: str, args: list[str], stdin: str | None = None) -> str:
        return shell.run(shell.in_namespace(self.hosts[host].namespace, args), stdin=stdin)

    # ---------------------------------------------------------------- state file

    def _state(self) -> dict:
        return {
            "pid": os.getpid(),
            "prefix": self.prefix,
            "subnet": self.subnet,
            "bridge": self.bridge,
            "namespaces": [host.namespace for host in self.hosts.values()],
            "links": [host.link for host in self.hosts.values()],
            "state_file": str(self.state_dir / f"{self.prefix}.json"),
        }

    def _write_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{self.prefix}.json"
        path.write_text(json.dumps(self._state()))


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each process group, then SIGKILL to whatever lingers."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2.0)


def _remove(state: dict) -> None:
    """Remove what a state file names; whatever is already gone is skipped."""
    for namespace in state["namespaces"]:
        # Processes still in a namespace would keep it alive after `ip netns del`; they
        # can only be ours, since the namespace is.
        pids = shell.run(["ip", "netns", "pids", namespace], check=False).split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        shell.run(["ip", "netns", "del", namespace], check=False)
    for link in state["links"]:
        shell.run(["ip", "link", "del", link], check=False)
    shell.run(["ip", "link", "del", state["bridge"]], check=False)
    shell.run(["ip", "route", "del", "unreachable", state["subnet"]], check=False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state["state_file"])


def cleanup_leftovers(state_dir: Path = STATE_DIR) -> list[str]:
    """Remove the topologies of drills whose process is gone; returns their prefixes."""
    removed = []
    if not state_dir.is_dir():
        return removed
    for path in sorted(state_dir.glob(f"{PREFIX}*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(state.get("pid", 0))):
            continue
        _remove(state)
        removed.append(state["prefix"])
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unused_prefix() -> str:
    """A prefix no namespace or link on this machine starts with: removing "our" names
    must never touch anyone else's."""
    taken = shell.run(["ip", "netns", "list"]) + shell.run(["ip", "-o", "link", "show"])
    for _ in range(100):
        prefix = f"{PREFIX}{random.randrange(16**4):04x}"
        if prefix not in taken:
            return prefix
    raise shell.CommandError("no unused name prefix for the drill's namespaces")


def _free_subnet() -> str:
    """A 10.77.N.0/24 that no address or route on this machine overlaps."""
    used = shell.run(["ip", "-4", "-o", "addr", "show"]) + shell.run(["ip", "-4", "route", "show"])
    candidates = list(SUBNET_RANGE)
    random.shuffle(candidates)
    for third in candidates:
        if f"10.77.{third}." not in used:
            return f"10.77.{third}.0/24"
    raise shell.CommandError("no free 10.77.N.0/24 subnet for the drill's hosts")
