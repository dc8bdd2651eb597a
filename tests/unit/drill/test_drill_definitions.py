"""The drills' pure parts: the layout's configs validate, filters, phases, leaders, CLI."""

from __future__ import annotations

import argparse

import pytest

from chaos import firewall, layout
from chaos.cli import list_text, main_drill, parse_duration
from chaos.drills import DRILLS, find
from chaos.nodes import majority_leader
from chaos.runner import Phases
from dispa.cluster.admin_api import validate_shared
from dispa.config.cluster import CoreConfig
from dispa.config.edge import EdgeConfig
from dispa.config.load import build_model


class FakeHost:
    def __init__(self, name, role, region, address):
        self.name, self.role, self.region, self.address = name, role, region, address


HOSTS = {
    name: FakeHost(name, role, region, f"10.77.9.{10 + i}")
    for i, (name, role, region) in enumerate(layout.host_specs())
}


def test_the_shared_config_and_node_files_pass_dispa_validation():
    endpoints = {"eu": "10.77.9.15:9001", "us": "10.77.9.16:9001", "ap": "10.77.9.1:40000"}
    shared = validate_shared(layout.shared_config(endpoints, "w0-1"))
    assert [r.name for r in shared.routes] == ["marker", "limited", "sticky", "load"]
    assert shared.rate_limits[0].limit == layout.RATE_LIMIT
    core = build_model(CoreConfig, layout.core_file(HOSTS, "core-us", "/tmp/x", "10.77.9.1"))
    assert core.raft.peers == ("10.77.9.10:7001", "10.77.9.12:7001")
    # Edges behind the drill's relays reach the core's admin API by the relays' address.
    assert core.admin.allowed_hosts == ("10.77.9.1",)
    edge = build_model(EdgeConfig, layout.edge_file(HOSTS, "edge-eu", "/tmp/y"))
    assert len(edge.cores) == 3 and edge.rate_limits.fallback_share == 0.2


def test_fallback_shares_follow_docs_cluster_md():
    assert layout.fallback_share("core") == layout.RATE_LIMIT // 3
    assert layout.fallback_share("edge") == int(layout.RATE_LIMIT * layout.EDGE_FALLBACK_SHARE)


def test_filter_script_drops_both_ways_or_a_share():
    script = firewall.filter_script("t1", drop_to=["10.0.0.1", "10.0.0.2"], drop_from=["10.0.0.1"])
    assert "ip daddr { 10.0.0.1, 10.0.0.2 } drop" in script
    assert "ip saddr { 10.0.0.1 } drop" in script
    lossy = firewall.filter_script("t2", drop_to=["10.0.0.3"], loss_percent=20)
    assert "numgen random mod 100 < 20 drop" in lossy
    with pytest.raises(ValueError):
        firewall.filter_script("t3", loss_percent=0)


def test_majority_leader_needs_more_than_half_of_all_cores():
    raft = {"a:7001": "core-eu", "b:7001": "core-us", "c:7001": "core-ap"}
    following = {"leader": "b:7001", "has_quorum": True}
    stale = {"leader": "a:7001", "has_quorum": True}  # a cut-off leader still names itself
    assert (
        majority_leader({"core-eu": stale, "core-us": following, "core-ap": following}, raft)
        == "core-us"
    )
    assert majority_leader({"core-eu": stale, "core-us": following, "core-ap": None}, raft) is None
    no_quorum = {"leader": "b:7001", "has_quorum": False}
    assert majority_leader({"x": no_quorum, "y": no_quorum, "z": None}, raft) is None


def test_phases_fit_the_duration():
    phases = Phases.for_duration(20)
    assert (phases.warmup, phases.hold, phases.total) == (5.0, 8.0, 20)
    short = Phases.for_duration(5)
    assert short.total >= short.warmup + short.hold + 3


def test_drill_names_are_unique_and_four_are_quick():
    names = [d.name for d in DRILLS]
    assert len(names) == len(set(names))
    assert sorted(d.name for d in DRILLS if d.quick) == [
        "edge-cut-off",
        "follower-kill",
        "leader-kill",
        "leader-partition",
    ]
    assert find("leader-kill").expect_leader == "new" and find("nope") is None
    for drill in DRILLS:
        assert drill.make_faults(), drill.name


def test_cli_lists_drills_and_refuses_bad_input(capsys):
    assert main_drill(["list"]) == 0
    assert "leader-kill" in capsys.readouterr().out
    assert list_text().splitlines()[0].startswith("drill")
    assert main_drill(["run", "no-such-drill"]) == 2
    assert "no drill named 'no-such-drill'" in capsys.readouterr().err
    assert main_drill(["run", "leader-kill", "--duration", "soon"]) == 2
    assert "'soon' is not a duration" in capsys.readouterr().err
    assert parse_duration("2m") == 120.0
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("1s")


def test_dispa_drill_reaches_the_drill_command(capsys):
    from dispa.cli import main

    assert main(["drill", "list"]) == 0
    assert "leader-partition" in capsys.readouterr().out
