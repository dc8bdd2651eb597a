"""The backup and restore procedures of docs/operator-guide.md, run on a real 3-core cluster.

Each test follows the guide's steps with the real commands: the shared config goes in
with ``dispa apply``, the backup is taken with the exact command line of
deploy/systemd/dispa-backup.service, and ``dispa restore`` and ``dispa status --json``
are what the operator runs afterwards. Cores are real ``dispa core`` processes
(tests/integration/cluster/conftest.py) on loopback ports the kernel handed out.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster.conftest import (
    PYTHON,
    REPO,
    Cluster,
    assert_acknowledged_writes_durable,
    probe_body_of,
    probe_config,
    write_once,
)
from support import wait_until

BACKUP_UNIT = REPO / "deploy" / "systemd" / "dispa-backup.service"
INSTALLED_DISPA = "/opt/dispa/.venv/bin/dispa"
UNIT_BACKUP_DIR = "/var/lib/dispa-backups"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop_all()


def dispa(*args: str, admin: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """A dispa command as an operator runs it, with DISPA_ADMIN naming a core."""
    return subprocess.run(
        [PYTHON, "-m", "dispa", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "DISPA_ADMIN": admin, "PYTHONUNBUFFERED": "1"},
    )


def run_backup_unit(admin: str, backup_dir: Path) -> subprocess.CompletedProcess:
    """ExecStart of dispa-backup.service, as systemd would run it: $$ and %% unescaped,
    DISPA_ADMIN from its environment; only the install paths point at this checkout."""
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str
    unit.read(BACKUP_UNIT)
    command = unit["Service"]["ExecStart"].replace("$$", "$").replace("%%", "%")
    command = command.replace(INSTALLED_DISPA, f"{PYTHON} -m dispa")
    command = command.replace(UNIT_BACKUP_DIR, str(backup_dir))
    assert command.startswith("/bin/sh -c '") and command.endswith("'")
    return subprocess.run(
        ["/bin/sh", "-c", command[len("/bin/sh -c '") : -1]],
        capture_output=True,
        text=True,
        timeout=30.0,
        cwd=REPO,
        env={**os.environ, "DISPA_ADMIN": admin},
    )


def status(admin: str) -> dict:
    result = dispa("status", "--json", admin=admin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_every_core_at(admin: str, revision: int, timeout: float = 15.0) -> dict:
    """Until `dispa status` shows every core reachable, at ``revision`` with lag 0."""

    def settled() -> dict | None:
        body = status(admin)
        cores = body["cores"]
        if body["revision"] == revision and all(
            core.get("reachable") and core["applied_revision"] == revision and core["lag"] == 0
            for core in cores
        ):
            return body
        return None

    return wait_until(settled, timeout=timeout, what=f"every core at revision {revision}")


def test_restore_after_losing_every_cores_data(cluster: Cluster, tmp_path: Path) -> None:
    admin = cluster.cores[0].admin_address
    shared = tmp_path / "shared.yaml"
    shared.write_text(yaml.safe_dump(probe_config("the config worth keeping\n")))
    applied = dispa("apply", "-f", str(shared), admin=admin)
    assert applied.returncode == 0, applied.stderr
    revision = int(applied.stdout.strip().rsplit(" ", 1)[1])
    wait_every_core_at(admin, revision)

    backups = tmp_path / "backups"
    backups.mkdir()
    leader = cluster.leader()
    backup = run_backup_unit(leader.admin_address, backups)
    assert backup.returncode == 0, backup.stderr
    (backup_file,) = backups.glob("dispa-*.json")
    assert f"backup of revision {revision} written to {backup_file}" in backup.stdout

    # Every core's machine is lost: kill -9, and the data directories are gone.
    cluster.kill_all()
    for core in cluster.cores:
        shutil.rmtree(core.data_dir)
    # The guide: start the cores with empty data directories, wait for a leader.
    for core in cluster.cores:
        core.start()
    cluster.wait_ready()
    assert status(admin)["revision"] == 0, "the new cluster starts empty"
    assert cluster.cores[1].probe().status == 503, "nothing to serve before the restore"
    # A wrong file is refused and changes nothing.
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("not a backup\n")
    refused = dispa("restore", "-i", str(not_a_backup), admin=admin)
    assert refused.returncode == 2 and "not a Dispa backup" in refused.stderr
    assert status(admin)["revision"] == 0

    restored = dispa("restore", "-i", str(backup_file), admin=admin)

    assert restored.returncode == 0, restored.stderr
    new_revision = int(restored.stdout.strip().rsplit(" ", 1)[1])
    assert restored.stdout.startswith("restored: the backup's config is now revision")
    # Numbered after the backup's revision: a revision number never names two configs.
    assert new_revision == revision + 1
    body = wait_every_core_at(admin, new_revision)
    assert {core["id"] for core in body["cores"]} == {"core-1", "core-2", "core-3"}
    for core in cluster.cores:
        reply = core.probe()
        assert (reply.status, reply.body) == (200, "the config worth keeping\n"), core.node_id
    # The restored cluster takes changes as usual.
    later = cluster.leader().put_config(probe_config("after the restore\n"))
    assert later.status == 200 and later.body["revision"] == new_revision + 1


def test_a_core_that_lost_its_data_catches_up_from_the_others(cluster: Cluster) -> None:
    """The guide: losing one core's data needs no backup; stop it, empty its data_dir,
    start it, and it catches up."""
    for index in range(5):
        outcome = write_once(cluster.leader(), index, f"before-{index}\n")
        assert outcome.result == "ok", outcome.detail
    lost = cluster.followers()[0]
    lost.stop()
    shutil.rmtree(lost.data_dir)
    lost.data_dir.mkdir()
    # The cluster keeps taking changes with two of three cores.
    during = write_once(cluster.leader(), 5, "while one core was away\n")
    assert during.result == "ok", during.detail

    lost.start()
    cluster.wait_ready()
    latest = cluster.cluster_status()["revision"]
    cluster.wait_applied(latest, cores=[lost], timeout=15.0)

    reply = lost.probe()
    assert (reply.status, reply.body) == (200, "while one core was away\n")
    history = assert_acknowledged_writes_durable([during], cluster.cores)
    assert probe_body_of(history[latest]) == "while one core was away\n"
    assert (lost.data_dir / "raft.journal").exists(), "it keeps its own journal again"
    after = write_once(lost, 6, "sent through the recovered core\n")
    assert after.result == "ok", after.detail
    body = "sent through the recovered core\n"
    wait_until(
        lambda: all(core.probe().body == body for core in cluster.cores),
        timeout=10.0,
        what="the write through the recovered core served everywhere",
    )
