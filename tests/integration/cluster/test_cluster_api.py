"""The config API of a running 3-core cluster, through HTTP and through the ``dispa`` CLI.

Most tests share one cluster (nothing here kills a core), so each reads the revision it
starts from instead of assuming one.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path

import yaml

from .conftest import (
    PROBE_PATH,
    PYTHON,
    REPO,
    Cluster,
    CoreProcess,
    free_ports,
    probe_body_of,
    probe_config,
    run_cli,
    wait_until,
)

JSON = {"Content-Type": "application/json"}  # the admin API takes writes only so labelled


def current_revision(cluster: Cluster) -> int:
    return cluster.cluster_status()["revision"]


def wait_served_everywhere(cluster: Cluster, body: str, timeout: float = 10.0) -> None:
    """Until GET /probe on every core's listener answers ``body``."""

    def served() -> bool:
        return all(core.probe().body == body for core in cluster.cores)

    wait_until(served, timeout=timeout, what=f"every core to serve {body!r}")


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_apply_through_the_cli_reaches_every_core_and_status_shows_no_lag(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = shared_cluster
    before = current_revision(cluster)
    # The CLI below talks to a follower, whose local view must have caught up first.
    cluster.wait_applied(before)
    config_file = write_yaml(tmp_path / "shared.yaml", probe_config("applied by the CLI\n"))
    admin = cluster.followers()[0].admin_address

    dry_run = run_cli("apply", "-f", str(config_file), "--admin", admin, "--dry-run")
    assert dry_run.returncode == 0, dry_run.stderr
    assert "+    body: 'applied by the CLI" in dry_run.stdout
    assert f"dry run: nothing applied (current revision {before})" in dry_run.stdout
    assert current_revision(cluster) == before

    applied = run_cli("apply", "-f", str(config_file), "--admin", admin)
    assert applied.returncode == 0, applied.stderr
    assert f"applied: revision {before + 1}" in applied.stdout
    cluster.wait_applied(before + 1)
    wait_served_everywhere(cluster, "applied by the CLI\n")

    again = run_cli("apply", "-f", str(config_file), "--admin", admin)
    assert again.returncode == 0, again.stderr
    assert f"unchanged: revision {before + 1} already holds this config" in again.stdout
    assert current_revision(cluster) == before + 1

    status = run_cli("status", "--admin", admin)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"revision {before + 1}  leader "), status.stdout
    rows = {
        line.split()[0]: line.split()
        for line in status.stdout.splitlines()
        if line.startswith("core-")
    }
    assert set(rows) == {"core-1", "core-2", "core-3"}, status.stdout
    states = sorted(row[2] for row in rows.values())
    assert states == ["follower", "follower", "leader"], status.stdout
    for row in rows.values():
        assert row[3:5] == [str(before + 1), "0"], f"applied and lag of {row}"

    as_json = json.loads(run_cli("status", "--admin", admin, "--json").stdout)
    assert as_json["revision"] == before + 1
    assert all(core["lag"] == 0 and core["reachable"] for core in as_json["cores"])


def test_a_write_sent_to_a_follower_is_committed_and_served_everywhere(
    shared_cluster: Cluster,
) -> None:
    cluster = shared_cluster
    before = current_revision(cluster)
    follower = cluster.followers()[0]

    reply = follower.put_config(probe_config("written on a follower\n"))

    assert reply.status == 200, reply.body
    assert reply.body == {"ok": True, "revision": before + 1}
    leader_view = cluster.leader().get_json("/api/v1/config")
    assert leader_view["revision"] == before + 1
    assert probe_body_of(leader_view["config"]) == "written on a follower\n"
    cluster.wait_applied(before + 1)
    wait_served_everywhere(cluster, "written on a follower\n")
    etag = follower.call("GET", "/api/v1/config").headers["etag"]
    assert etag == f'"{before + 1}"'


def test_a_stale_if_match_is_refused_with_the_current_revision(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = shared_cluster
    leader = cluster.leader()
    base = leader.put_config(probe_config("compare and set base\n")).body["revision"]

    stale = leader.put_config(probe_config("based on an old read\n"), if_match=base - 1)

    assert stale.status == 409, stale.body
    assert stale.body["revision"] == base
    assert current_revision(cluster) == base
    fresh = leader.put_config(probe_config("based on the latest read\n"), if_match=base)
    assert fresh.status == 200 and fresh.body["revision"] == base + 1
    cli = run_cli(
        "apply",
        "-f",
        str(write_yaml(tmp_path / "late.yaml", probe_config("late\n"))),
        "--admin",
        leader.admin_address,
        "--if-revision",
        str(base),
    )
    assert cli.returncode == 1
    assert "error (409): the config changed since that revision" in cli.stderr


def test_an_invalid_config_is_refused_listing_every_problem_with_its_path(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = shared_cluster
    before = current_revision(cluster)
    broken = {
        "upstreams": [{"name": "app", "endpoints": [{"address": "not-an-address"}]}],
        "routes": [
            {
                "match": {"host": 1, "path_exact": "/a"},
                "direct_response": {"status": 200, "body": "x"},
                "bogus": 1,
            },
            {"match": {"host": "*"}, "upstream": "missing"},
        ],
        "drain_timeout": "forever",
    }

    reply = cluster.cores[0].put_config(broken)

    assert reply.status == 400, reply.body
    assert reply.body["error"] == "invalid config"
    paths = sorted(problem.split(":")[0] for problem in reply.body["errors"])
    assert paths == [
        "drain_timeout",
        "routes[0].bogus",
        "routes[0].match.host",
        "routes[1].upstream",
        "upstreams[0].endpoints[0].address",
    ], reply.body["errors"]
    per_node = cluster.cores[0].put_config(
        {**probe_config("x"), "listeners": [{"name": "l", "address": "127.0.0.1:1"}]}
    )
    assert per_node.status == 400
    assert "set per node" in per_node.body["errors"][0]
    cli = run_cli(
        "apply",
        "-f",
        str(write_yaml(tmp_path / "broken.yaml", broken)),
        "--admin",
        cluster.cores[1].admin_address,
    )
    assert cli.returncode == 2
    assert "routes[1].upstream: unknown upstream 'missing'" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert current_revision(cluster) == before


def test_history_rollback_and_diff(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    leader = cluster.leader()
    first = leader.put_config(probe_config("history first\n")).body["revision"]
    second = leader.put_config(probe_config("history second\n")).body["revision"]
    assert second == first + 1

    history = leader.get_json("/api/v1/config/history")
    listed = [entry["revision"] for entry in history["history"]]
    assert listed == sorted(listed) and {first, second} <= set(listed)
    assert history["revision"] == second

    diff = leader.call("GET", f"/api/v1/config/diff?from={first}&to={second}")
    assert diff.status == 200
    assert diff.body.splitlines()[:2] == [f"--- revision {first}", f"+++ revision {second}"]
    assert "-    body: 'history first" in diff.body
    assert "+    body: 'history second" in diff.body

    rollback = cluster.followers()[0].call(
        "POST", "/api/v1/config/rollback", body=json.dumps({"revision": first}), headers=JSON
    )
    assert rollback.status == 200, rollback.body
    rolled_back = rollback.body["revision"]
    assert rolled_back == second + 1, "a rollback is a new revision, history is not rewritten"
    entry = leader.get_json(f"/api/v1/config/{rolled_back}")
    assert entry["config"] == leader.get_json(f"/api/v1/config/{first}")["config"]
    assert entry["note"] == f"rollback to revision {first}"
    cluster.wait_applied(rolled_back)
    wait_served_everywhere(cluster, "history first\n")
    latest_diff = leader.call("GET", "/api/v1/config/diff")  # default: previous -> current
    assert "+    body: 'history first" in latest_diff.body

    unknown = leader.call(
        "POST", "/api/v1/config/rollback", body=json.dumps({"revision": 10**6}), headers=JSON
    )
    assert unknown.status == 404
    assert current_revision(cluster) == rolled_back


def test_backup_and_restore_round_trip(shared_cluster: Cluster, tmp_path: Path) -> None:
    cluster = shared_cluster
    admin = cluster.cores[2].admin_address
    saved = cluster.leader().put_config(probe_config("saved in the backup\n")).body["revision"]
    # A backup is of the state the answering core holds, which may lag by a heartbeat.
    cluster.wait_applied(saved)
    backup_file = tmp_path / "cluster.backup.json"

    backup = run_cli("backup", "--admin", admin, "-o", str(backup_file))
    assert backup.returncode == 0, backup.stderr
    assert f"backup of revision {saved} written to" in backup.stdout
    assert json.loads(backup_file.read_text())["state"]["revision"] == saved

    later = cluster.leader().put_config(probe_config("written after the backup\n"))
    assert later.body["revision"] == saved + 1
    restore = run_cli("restore", "--admin", admin, "-i", str(backup_file))

    assert restore.returncode == 0, restore.stderr
    restored_revision = current_revision(cluster)
    assert restored_revision > saved + 1, "a restore is a new revision; revisions never go back"
    assert f"now revision {restored_revision}" in restore.stdout
    current = cluster.leader().get_json("/api/v1/config")
    assert probe_body_of(current["config"]) == "saved in the backup\n"
    assert current["note"] == f"restored from a backup at revision {saved}"
    cluster.wait_applied(restored_revision)
    wait_served_everywhere(cluster, "saved in the backup\n")
    members = {entry["id"] for entry in cluster.cluster_status()["cores"]}
    assert members == {"core-1", "core-2", "core-3"}
    again = cluster.leader().call(
        "POST", "/api/v1/restore", body=backup_file.read_text(), headers=JSON
    )
    assert again.status == 200
    assert again.body == {"ok": True, "revision": restored_revision, "unchanged": True}

    not_a_backup = cluster.cores[0].call(
        "POST", "/api/v1/restore", body='{"state": 1}', headers=JSON
    )
    assert not_a_backup.status == 400


def test_a_restore_keeps_the_revisions_written_since_the_backup(shared_cluster: Cluster) -> None:
    leader = shared_cluster.leader()
    leader.put_config(probe_config("in the backup\n"))
    backup = leader.get_json("/api/v1/backup")  # the leader has applied its own commit
    since = leader.put_config(probe_config("written since the backup\n")).body["revision"]

    restore = leader.call("POST", "/api/v1/restore", body=json.dumps(backup), headers=JSON)

    assert restore.status == 200 and restore.body["revision"] == since + 1
    kept = leader.revision_config(since)
    assert kept is not None, f"revision {since} vanished from the history"
    assert probe_body_of(kept) == "written since the backup\n"


def test_a_restore_never_gives_an_existing_revision_number_another_config(
    shared_cluster: Cluster,
) -> None:
    leader = shared_cluster.leader()
    current = leader.put_config(probe_config("ours\n")).body["revision"]
    # A backup of another cluster (same members, so this cluster stays usable) that had
    # reached higher revisions with configs of its own.
    foreign = copy.deepcopy(leader.get_json("/api/v1/backup"))
    foreign["state"]["history"] = {
        str(revision): {
            "config": probe_config(f"theirs {revision}\n"),
            "time": 0.0,
            "author": "elsewhere",
            "note": "",
        }
        for revision in range(1, current + 4)
    }
    foreign["state"]["revision"] = current + 3

    restore = leader.call("POST", "/api/v1/restore", body=json.dumps(foreign), headers=JSON)

    assert restore.status == 200
    assert probe_body_of(leader.revision_config(current)) == "ours\n", "history rewritten"
    assert restore.body["revision"] > current + 3 and not restore.body.get("unchanged")


def test_restoring_another_clusters_backup_keeps_this_clusters_members(cluster: Cluster) -> None:
    leader = cluster.leader()
    leader.put_config(probe_config("before the restore\n"))
    # Each core's registration task looks once more, up to 0.5 s after its registration
    # committed, and would register again over a restore made before then.
    time.sleep(1.0)
    foreign = copy.deepcopy(leader.get_json("/api/v1/backup"))
    foreign["state"]["members"] = {
        f"old-core-{n}": {
            "raft": f"192.0.2.{n}:7001",
            "admin": f"192.0.2.{n}:9911",
            "region": "old",
        }
        for n in (1, 2, 3)
    }

    restore = leader.call("POST", "/api/v1/restore", body=json.dumps(foreign), headers=JSON)

    assert restore.status == 200
    # The leader's view: it has applied the restore it acknowledged.
    members = {entry["id"] for entry in leader.get_json("/api/v1/cluster")["cores"]}
    assert members == {"core-1", "core-2", "core-3"}, f"members after restore: {members}"


def test_a_core_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    raft_port, listener_port, admin_port = free_ports(3)
    core = CoreProcess(
        "core-1",
        tmp_path / "core-1",
        raft_port=raft_port,
        listener_port=listener_port,
        admin_port=admin_port,
        peer_raft_ports=[],
        secret=None,
    )
    environment = {k: v for k, v in os.environ.items() if k != "DISPA_CLUSTER_SECRET"}

    result = subprocess.run(
        [PYTHON, "-m", "dispa", "core", "-c", str(core.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=environment,
    )

    assert result.returncode == 2
    assert "node.secret" in result.stderr
    assert "DISPA_CLUSTER_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert not core.data_dir.exists() or not any(core.data_dir.iterdir())

    # The same file with the secret in the environment starts (a one-core cluster).
    try:
        core.start(env={"DISPA_CLUSTER_SECRET": "from-the-environment"})
        wait_until(
            lambda: core.node_status()["state"] == "leader",
            timeout=20,
            what="the one-core cluster to elect itself",
        )
        assert core.probe().status == 503, f"nothing applied yet, so {PROBE_PATH} is 503"
    finally:
        core.kill()
