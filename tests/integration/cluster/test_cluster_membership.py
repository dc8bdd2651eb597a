"""Adding and removing a core at run time with `dispa members`."""

from __future__ import annotations

import socket

import yaml

from .conftest import Cluster, CoreProcess, free_ports, probe_config, run_cli, wait_until


def can_connect(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def test_a_core_is_added_serves_the_config_and_is_removed_again(cluster: Cluster) -> None:
    revision = cluster.leader().put_config(probe_config("for every core\n")).body["revision"]
    raft_port, listener_port, admin_port = free_ports(3)
    peers = [int(core.raft_address.rpartition(":")[2]) for core in cluster.cores]
    newcomer = CoreProcess(
        "core-4",
        cluster.workdir / "core-4",
        raft_port=raft_port,
        listener_port=listener_port,
        admin_port=admin_port,
        peer_raft_ports=peers,
    )
    # A core registers its own region when it starts: give it the one `members add` says,
    # or whichever of the two writes lands last would win.
    newcomer.config["node"]["region"] = "sa"
    newcomer.config_path.write_text(yaml.safe_dump(newcomer.config, sort_keys=False))
    admin = cluster.cores[0].admin_address
    # Started first: a core is added only once its Raft address accepts connections (the
    # cluster ignores it until then).
    newcomer.start()
    try:
        wait_until(
            lambda: can_connect(newcomer.raft_address), timeout=20, what="the new core's Raft port"
        )
        added = run_cli(
            "members", "add", "--admin", admin, "--id", "core-4",
            "--raft", newcomer.raft_address, "--core-admin", newcomer.admin_address,
            "--region", "sa",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        wait_until(
            lambda: newcomer.node_status()["applied_revision"] >= revision,
            timeout=20,
            what="the new core to catch up",
        )
        assert newcomer.probe().body == "for every core\n"
        cores = {c["id"]: c for c in cluster.cores[1].get_json("/api/v1/cluster")["cores"]}
        assert cores["core-4"]["region"] == "sa" and cores["core-4"]["reachable"]

        removed = run_cli("members", "remove", "--admin", admin, "--id", "core-4")
        assert removed.returncode == 0, removed.stderr
        wait_until(
            lambda: "core-4" not in {c["id"] for c in cluster.cluster_status()["cores"]},
            timeout=10,
            what="core-4 to leave the member list",
        )
        # The three left still commit.
        later = cluster.leader().put_config(probe_config("after the removal\n"))
        assert later.status == 200, later.body
        unknown = run_cli("members", "remove", "--admin", admin, "--id", "core-9")
        assert unknown.returncode != 0 and "no core named core-9" in unknown.stderr
    finally:
        newcomer.stop()
