"""The Raft port of a core: what one peer without the cluster secret can make it do.

A real 3-core cluster; each attack aims at the leader's Raft port while a witness samples
every core's view of the leader, writes configs through the admin API, and reads the
leader's resident memory. The leader must stay the leader, writes keep succeeding, its
memory stays within 20% of what it was before, and the attack's connections get closed.
Every attack is bounded in bytes, connections and seconds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest
from harness import rss_kib, wait_rss_within

_CLUSTER_HARNESS = Path(__file__).resolve().parents[1] / "integration" / "cluster" / "conftest.py"
_spec = importlib.util.spec_from_file_location("raft_port_cluster_harness", _CLUSTER_HARNESS)
cluster_harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cluster_harness  # its dataclasses look their module up
_spec.loader.exec_module(cluster_harness)

HOST = cluster_harness.HOST
# Defaults of the Raft port (dispa/config/cluster.py, RaftSettings).
AUTH_TIMEOUT = 5.0
MAX_UNAUTHENTICATED = 64
# On a loaded 2-core machine a dropped connection may be noticed a little late.
MARGIN = 4.0
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def raft_cluster(tmp_path_factory):
    cluster = cluster_harness.Cluster(tmp_path_factory.mktemp("raft-port"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop_all()


def _raft_port(core) -> int:
    return int(core.raft_address.rpartition(":")[2])


class Witness:
    """Watches the cluster while an attack runs: who every core says leads, whether config
    writes commit, and the attacked core's resident memory."""

    def __init__(self, cluster, attacked, *, write_interval: float = 0.5) -> None:
        self.cluster = cluster
        self.attacked = attacked
        self.write_interval = write_interval
        self.leaders: list[list[str | None]] = []
        self.writes: list[str] = []
        self.peak_rss_kib = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._write, daemon=True),
        ]

    def __enter__(self) -> Witness:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _sample(self) -> None:
        while not self._stop.is_set() and len(self.leaders) < 2000:
            seen = []
            for core in self.cluster.cores:
                try:
                    seen.append(core.node_status(timeout=2.0)["leader"])
                except Exception as error:  # a failed read is a finding
                    seen.append(f"unreachable: {type(error).__name__}")
            self.leaders.append(seen)
            with contextlib.suppress(OSError, AssertionError):
                self.peak_rss_kib = max(self.peak_rss_kib, rss_kib(self.attacked.popen.pid))
            self._stop.wait(0.2)

    def _write(self) -> None:
        index = 0
        while not self._stop.is_set() and index < 200:
            index += 1
            outcome = cluster_harness.write_once(
                self.attacked, index, f"witness-{time.monotonic_ns()}\n"
            )
            self.writes.append(f"{outcome.result} {outcome.detail}".strip())
            self._stop.wait(self.write_interval)

    def assert_unharmed(self, leader_address: str, baseline_kib: int) -> None:
        assert self.leaders, "the witness took no sample"
        lost = [seen for seen in self.leaders if seen.count(leader_address) < 2]
        assert not lost, f"samples where a majority did not name the leader: {lost[:5]}"
        assert self.writes, "no config write was tried during the attack"
        failed = [write for write in self.writes if write != "ok"]
        assert not failed, f"{len(failed)}/{len(self.writes)} writes failed: {failed[:3]}"
        assert self.peak_rss_kib <= baseline_kib * 1.2, (
            f"the attacked core's RSS peaked at {self.peak_rss_kib} KiB, baseline {baseline_kib}"
        )


def _settled_leader(cluster):
    leader = cluster.leader()
    # A quiet moment for the baseline: the cores' start-up work is over.
    time.sleep(1.0)
    return leader, rss_kib(leader.popen.pid)


def _closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the other side closed (EOF or reset) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            return False
        try:
            if sock.recv(65536) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except BlockingIOError:
            continue
    return False


def _dropped_counter(core, reason: str) -> float:
    text = core.call("GET", "/metrics").body
    prefix = f'dispa_raft_peer_dropped_total{{reason="{reason}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_huge_length_prefix_is_refused_before_buffering(raft_cluster):
    leader, baseline = _settled_leader(raft_cluster)
    sent = 0
    closed = False
    with Witness(raft_cluster, leader) as witness:
        sock = socket.create_connection((HOST, _raft_port(leader)), timeout=5)
        sock.settimeout(5)
        chunk = os.urandom(MiB)
        try:
            sock.sendall(struct.pack("i", 0x7FFFFFFF))
            deadline = time.monotonic() + 15
            while sent < 72 * MiB and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        except TimeoutError:
            closed = _closed_by_peer(sock, MARGIN)
        else:
            closed = _closed_by_peer(sock, MARGIN)
        finally:
            sock.close()
        time.sleep(2.0)  # the witness keeps watching a moment after the attack
    assert closed, f"the core kept the connection open after {sent // MiB} MiB"
    assert sent < 16 * MiB, f"the core read {sent // MiB} MiB of a message it cannot accept"
    witness.assert_unharmed(leader.raft_address, baseline)
    wait_rss_within(leader.popen.pid, baseline, factor=1.2)
    assert _dropped_counter(leader, "oversized") >= 1


def test_idle_unauthenticated_connections_are_capped_and_timed_out(raft_cluster):
    leader, baseline = _settled_leader(raft_cluster)
    count = 4 * MAX_UNAUTHENTICATED
    sockets: list[socket.socket] = []
    try:
        with Witness(raft_cluster, leader) as witness:
            for _ in range(count):
                sockets.append(socket.create_connection((HOST, _raft_port(leader)), timeout=5))
            opened = time.monotonic()
            # Beyond the cap the oldest unauthenticated connections are closed at once.
            time.sleep(1.5)
            still_open = [sock for sock in sockets if not _closed_by_peer(sock, 0.01)]
            assert len(still_open) <= MAX_UNAUTHENTICATED, (
                f"{len(still_open)} of {count} unauthenticated connections held"
            )
            # The rest are closed once the authentication deadline passes.
            lingering = [
                sock
                for sock in still_open
                if not _closed_by_peer(
                    sock, max(0.1, opened + AUTH_TIMEOUT + MARGIN - time.monotonic())
                )
            ]
            assert not lingering, f"{len(lingering)} idle connections outlived the deadline"
    finally:
        for sock in sockets:
            sock.close()
    witness.assert_unharmed(leader.raft_address, baseline)
    assert _dropped_counter(leader, "unauthenticated_limit") >= count - MAX_UNAUTHENTICATED
    assert _dropped_counter(leader, "auth_timeout") >= 1


def test_slowloris_peer_is_dropped_at_the_authentication_deadline(raft_cluster):
    leader, baseline = _settled_leader(raft_cluster)
    sockets = []
    try:
        with Witness(raft_cluster, leader) as witness:
            for _ in range(20):
                sock = socket.create_connection((HOST, _raft_port(leader)), timeout=5)
                # A message that fits the small pre-authentication cap, sent a byte at a
                # time: every byte would reset an idle timer.
                sock.sendall(struct.pack("i", 1000))
                sockets.append(sock)
            opened = time.monotonic()
            alive = list(sockets)
            deadline = opened + AUTH_TIMEOUT + MARGIN
            while alive and time.monotonic() < deadline:
                for sock in list(alive):
                    try:
                        sock.send(b"x")
                    except OSError:
                        alive.remove(sock)
                        continue
                    if _closed_by_peer(sock, 0.0):
                        alive.remove(sock)
                time.sleep(0.25)
            held_for = time.monotonic() - opened
            assert not alive, f"{len(alive)} slowloris connections still open after {held_for:.1f}s"
    finally:
        for sock in sockets:
            sock.close()
    witness.assert_unharmed(leader.raft_address, baseline)
    assert _dropped_counter(leader, "auth_timeout") >= 1


def _garbage_messages() -> list[bytes]:
    from cryptography.fernet import Fernet

    wrong_key = Fernet(Fernet.generate_key()).encrypt(b"not the cluster secret")
    junk = os.urandom(300)
    return [
        struct.pack("i", len(junk)) + junk,  # framed, but not a token
        struct.pack("i", len(wrong_key)) + wrong_key,  # a token under another key
        struct.pack("i", -5) + junk,  # a negative length
        b"GET / HTTP/1.1\r\nHost: raft\r\n\r\n",  # the wrong protocol
        os.urandom(64 * 1024),  # noise
    ]


def test_garbage_is_dropped_at_once(raft_cluster):
    leader, baseline = _settled_leader(raft_cluster)
    with Witness(raft_cluster, leader) as witness:
        for _ in range(10):
            for message in _garbage_messages():
                with socket.create_connection((HOST, _raft_port(leader)), timeout=5) as sock:
                    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                        sock.sendall(message)
                    assert _closed_by_peer(sock, MARGIN), f"still open after {message[:20]!r}"
        time.sleep(1.0)
    witness.assert_unharmed(leader.raft_address, baseline)
    dropped = sum(_dropped_counter(leader, reason) for reason in ("bad_message", "oversized"))
    assert dropped >= 50
