"""A real cluster started under a permissive umask keeps its data private: each core's data
directory is 0700 with 0600 files, and ``dispa backup`` writes a 0600 file."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from .conftest import Cluster, probe_config, run_cli


@contextlib.contextmanager
def umask(value: int):
    previous = os.umask(value)  # inherited by the processes started meanwhile
    try:
        yield
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_core_data_and_backups_are_private_whatever_the_umask(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    with umask(0o000):
        cluster = make_cluster()
    written = cluster.leader().put_config(probe_config("private\n"))
    assert written.status == 200, written.body
    cluster.wait_applied(written.body["revision"])
    for core in cluster.cores:
        assert mode(core.data_dir) == 0o700, core.node_id
        names = sorted(os.listdir(core.data_dir))
        assert "raft.journal" in names, names
        for name in names:
            path = core.data_dir / name
            expected = 0o700 if path.is_dir() else 0o600
            assert mode(path) == expected, (core.node_id, name, oct(mode(path)))

    os.chmod(tmp_path, 0o755)
    target = tmp_path / "backups" / "nightly" / "cluster.json"
    with umask(0o000):
        backup = run_cli("backup", "--admin", cluster.leader().admin_address, "-o", str(target))
    assert backup.returncode == 0, backup.stderr
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700 and mode(target.parent.parent) == 0o700
    assert mode(tmp_path) == 0o755  # an existing folder is the user's: left as it was
    assert sorted(os.listdir(target.parent)) == ["cluster.json"]
