"""One core with ``peers: []``: a sensible way to try an edge (docs/cluster.md, "A single
core"). It elects itself, takes configs and feeds an edge; it has no fault tolerance, so
with it gone the edge keeps serving its last config."""

from __future__ import annotations

from pathlib import Path

from edge.conftest import EdgeProcess
from support import wait_until

from .conftest import Cluster, probe_config


def test_a_single_core_takes_configs_and_an_edge_follows_it(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", count=1)
    edge = EdgeProcess("edge-a", "eu", tmp_path / "edge", [cluster.cores[0].admin_address])
    try:
        cluster.start()
        core = cluster.leader()  # itself, with a quorum of one
        assert core.config["raft"]["peers"] == []
        reply = core.put_config(probe_config("from the only core\n"))
        assert (reply.status, reply.body["revision"]) == (200, 1), reply
        edge.start()
        edge.wait_revision(1)
        assert edge.get("/probe").body == "from the only core\n"

        # A config sent as text has no folder to read relative file paths from.
        relative = {**probe_config("never\n"), "access_log": {"path": "logs/access.log"}}
        reply = core.put_config(relative)
        assert reply.status == 400, reply
        assert any(p.startswith("access_log.path: ") for p in reply.body["errors"]), reply.body

        # No fault tolerance: the core gone, nothing can change, and the edge serves on.
        core.kill()
        wait_until(
            lambda: edge.status()["following"] is None, timeout=10.0, what="the edge to notice"
        )
        assert edge.get("/probe").body == "from the only core\n"
    finally:
        edge.stop()
        cluster.stop_all()
