"""The topology on its own: hosts reach each other, partitions and loss really cut links,
and everything is removed afterwards, also after an exception or a killed drill."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from chaos import firewall, shell
from chaos.topology import Topology, cleanup_leftovers

SPECS = [("a", "core", "eu"), ("b", "core", "us")]
CONNECT = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], 8000), timeout=1).close(); print('connected')\n"
    "except OSError as e:\n"
    "    print('failed', type(e).__name__)\n"
)


def namespaces() -> str:
    return shell.run(["ip", "netns", "list"])


def links() -> str:
    return shell.run(["ip", "-o", "link", "show"])


def connect_from(topology: Topology, host: str, address: str) -> str:
    return topology.run_in(host, [sys.executable, "-c", CONNECT, address]).strip()


def serve(topology: Topology, host: str, tmp_path) -> None:
    address = topology.hosts[host].address
    topology.spawn(
        host, [sys.executable, "-m", "http.server", "--bind", address, "8000"], tmp_path / "s.log"
    )
    deadline = time.monotonic() + 10
    while connect_from(topology, "b", address) != "connected":
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.1)


def test_hosts_reach_each_other_and_a_partition_cuts_and_heals(tmp_path):
    with Topology(SPECS) as topology:
        a, b = topology.hosts["a"], topology.hosts["b"]
        assert a.address != b.address and a.namespace.startswith(topology.prefix)
        serve(topology, "a", tmp_path)
        # The root namespace (where the drill's clients live) reaches the host too.
        socket.create_connection((a.address, 8000), timeout=2).close()
        script = firewall.filter_script("drill_fault_t", drop_from=[b.address])
        firewall.apply(topology, "a", script)
        assert connect_from(topology, "b", a.address) == "failed TimeoutError"
        socket.create_connection((a.address, 8000), timeout=2).close()  # only b is cut
        firewall.remove(topology, "a", "drill_fault_t")
        assert connect_from(topology, "b", a.address) == "connected"
        prefix = topology.prefix
    assert prefix not in namespaces() and prefix not in links()
    assert topology.subnet not in shell.run(["ip", "route", "show"])


def test_everything_is_removed_after_an_exception(tmp_path):
    with pytest.raises(RuntimeError), Topology(SPECS) as topology:
        process = topology.spawn("a", ["sleep", "60"], tmp_path / "sleep.log")
        raise RuntimeError("the drill broke half-way")
    assert process.poll() is not None  # the process started inside was stopped
    assert topology.prefix not in namespaces() and topology.prefix not in links()
    assert not (topology.state_dir / f"{topology.prefix}.json").exists()


def test_leftovers_of_a_killed_drill_are_removed_and_live_ones_kept(tmp_path):
    state_dir = tmp_path / "state"
    live = Topology(SPECS, state_dir=state_dir)
    dead = Topology(SPECS, state_dir=state_dir)
    live.create()
    try:
        dead.create()
        dead.spawn("a", ["sleep", "60"], tmp_path / "sleep.log")
        # Pretend dead's owner was killed with SIGKILL: its state file names a gone pid.
        gone = subprocess.Popen(["true"])
        gone.wait()
        path = state_dir / f"{dead.prefix}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "pid": gone.pid}))
        assert cleanup_leftovers(state_dir) == [dead.prefix]
        assert dead.prefix not in namespaces() and dead.prefix not in links()
        assert live.prefix in namespaces()
    finally:
        live.destroy()
        dead.processes.clear()
        dead.destroy()
    assert live.prefix not in namespaces()
