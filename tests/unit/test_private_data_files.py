"""Every writer of Dispa's data files creates them 0600 in 0700 folders, whatever the umask:
the Raft journal and snapshots, the edge's persisted config, the disk cache, ACME files.
(``dispa backup`` is checked against a real cluster in tests/integration/cluster.)"""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest

from dispa.cluster.acme_install import ManagedCertificates
from dispa.cluster.raft_store import RaftStore
from dispa.edge.cache.disk_files import DiskFiles, pack
from dispa.edge.cache.key import variant_id
from dispa.edge.persist import SNAPSHOT_FILE, load_snapshot, save_snapshot


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_private_tree(root: Path) -> list[str]:
    """Every folder under ``root`` (and it) is 0700 and every file 0600; returns the files."""
    assert mode(root) == 0o700, root
    found = []
    for folder, folders, files in os.walk(root):
        for name in folders:
            assert mode(os.path.join(folder, name)) == 0o700, os.path.join(folder, name)
        for name in files:
            path = os.path.join(folder, name)
            assert mode(path) == 0o600, (path, oct(mode(path)))
            found.append(os.path.relpath(path, root))
    return sorted(found)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_raft_journal_and_snapshot(tmp_path, umask):
    data = tmp_path / "var" / "core"
    store = RaftStore(f"127.0.0.1:{free_port()}", [], str(data), "secret")
    try:
        wait_for(store._isLeader, "a one-core cluster to elect itself")
        result = store.put_config({"routes": []}, None, 1.0, "t", "", sync=True, timeout=10)
        assert result["ok"], result
        store.forceLogCompaction()
        wait_for((data / "raft.snapshot").exists, "a snapshot")
    finally:
        store.destroy_synchronous()
    files = assert_private_tree(data)
    assert {"raft.journal", "raft.journal.meta", "raft.snapshot"} <= set(files), files
    assert mode(tmp_path / "var") == 0o700  # a parent Dispa made


def test_raft_files_left_with_a_loose_mode_are_tightened_at_start(tmp_path, umask):
    data = tmp_path / "core"
    address = f"127.0.0.1:{free_port()}"
    store = RaftStore(address, [], str(data), "secret")
    try:
        wait_for(store._isLeader, "a one-core cluster to elect itself")
    finally:
        store.destroy_synchronous()
    os.chmod(data, 0o755)  # as an older version, or an operator's mkdir, left them
    for name in os.listdir(data):
        os.chmod(data / name, 0o644)
    store = RaftStore(address, [], str(data), "secret")
    store.destroy_synchronous()
    assert "raft.journal" in assert_private_tree(data)


def test_edge_persisted_config(tmp_path, umask):
    data = tmp_path / "edge"
    snapshot = {"revision": 3, "config": {"routes": []}, "purge_seq": 0, "committed_at": 1.0}
    save_snapshot(str(data), snapshot)
    save_snapshot(str(data), {**snapshot, "revision": 4})  # replaced, still private
    assert assert_private_tree(data) == [SNAPSHOT_FILE]
    assert load_snapshot(str(data))["revision"] == 4


def test_edge_disk_cache(tmp_path, umask):
    root = tmp_path / "cache"
    files = DiskFiles(str(root))
    variant = variant_id("GET https://a/", b"")
    files.write(variant, pack("GET https://a/", b"blob"))
    files.write(variant, pack("GET https://a/", b"blob2"))
    assert assert_private_tree(root) == [os.path.join(variant[:2], variant + ".entry")]
    assert files.read(variant) == b"blob2"


def test_acme_certificate_key_and_saved_state(tmp_path, umask):
    from tests.tls_certs import TestCA

    issued = TestCA().issue("a.example.com", dns_names=("a.example.com",))
    data = tmp_path / "node"
    managed = ManagedCertificates(str(data))
    managed.take(
        {
            "seq": 1,
            "challenges": {},
            "certificate": {
                "domains": ["a.example.com"],
                "chain": issued.cert_pem.decode(),
                "key": issued.key_pem.decode(),
                "not_after": 2e9,
                "serial": "ab",
            },
        }
    )
    managed.save()
    assert assert_private_tree(data / "acme") == ["certificate.pem", "key.pem", "served.json"]
    assert mode(data) == 0o700
