"""Losing a core: the leader killed with ``kill -9`` in the middle of a stream of config
writes, and a killed core coming back.

What a client was told is the contract: every write acknowledged with a revision must be
at that revision, with that content, on every core afterwards, including the one that
was killed and restarted. Writes that failed or timed out promise nothing either way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from .conftest import (
    Cluster,
    ConfigWriter,
    WriteOutcome,
    assert_acknowledged_writes_durable,
    first_commit_after,
    probe_config,
    summarize,
    wait_until,
    write_once,
)

# Bounds of the client loop; 60 writes at ~0.1-0.2 s each take 6-12 s with the failover.
MAX_WRITES = 60
MAX_WRITE_SECONDS = 20.0
WRITES_BEFORE_KILL = 10
# Generous: the default timings fail over in well under a second (see bench/cluster.py);
# this only catches a cluster that does not recover at all.
FAILOVER_LIMIT = 5.0
CATCH_UP_LIMIT = 15.0
LOAD_SECONDS = 20
WRITERS_PER_CORE = 4


def test_killing_the_leader_during_writes_loses_no_acknowledged_write(cluster: Cluster) -> None:
    leader = cluster.leader()
    writer = ConfigWriter(cluster, MAX_WRITES, MAX_WRITE_SECONDS, tag="failover")
    writer.start()
    try:
        writer.wait_acknowledged(WRITES_BEFORE_KILL, timeout=10.0)
        killed_at = time.monotonic()
        leader.kill()
        # Let the loop go on until a few writes have been acknowledged by the new leader.
        wait_until(
            lambda: len([o for o in writer.acknowledged() if o.started > killed_at]) >= 5,
            timeout=MAX_WRITE_SECONDS,
            what="writes acknowledged after the failover",
        )
    finally:
        outcomes = writer.stop_and_join()

    first_after = first_commit_after(outcomes, killed_at)
    assert first_after is not None, f"no write committed after the kill: {summarize(outcomes)}"
    failover = first_after.finished - killed_at
    print(
        f"\nleader {leader.node_id} killed: next commit after {failover:.3f} s "
        f"(write {first_after.index} via {first_after.target}, revision {first_after.revision});"
        f" writes: {summarize(outcomes)}"
    )
    assert failover < FAILOVER_LIMIT
    new_leader = cluster.leader()
    assert new_leader is not leader

    leader.start()
    cluster.wait_ready()
    revision = cluster.cluster_status()["revision"]
    cluster.wait_applied(revision, timeout=CATCH_UP_LIMIT)
    assert_acknowledged_writes_durable(outcomes, cluster.cores)
    latest = max((o for o in outcomes if o.result == "ok"), key=lambda o: o.revision)
    if latest.revision == revision:
        assert all(core.probe().body == latest.body for core in cluster.cores)


def test_a_killed_core_rejoins_and_catches_up(cluster: Cluster) -> None:
    victim = cluster.followers()[0]
    victim.kill()
    leader = cluster.leader()
    revisions = [
        leader.put_config(probe_config(f"while {victim.node_id} was down {n}\n")).body["revision"]
        for n in range(5)
    ]
    assert revisions == list(range(revisions[0], revisions[0] + 5))

    restarted_at = time.monotonic()
    victim.start()
    wait_until(
        lambda: victim.node_status()["applied_revision"] == revisions[-1],
        timeout=CATCH_UP_LIMIT,
        what=f"{victim.node_id} to apply revision {revisions[-1]}",
    )
    print(f"\n{victim.node_id} caught up {time.monotonic() - restarted_at:.2f} s after restart")

    assert victim.probe().body == f"while {victim.node_id} was down 4\n"
    status = cluster.wait_ready()
    assert all(core["lag"] == 0 for core in status["cores"])
    # It is a full member again: a write sent to it is committed.
    reply = victim.put_config(probe_config("after the rejoin\n"))
    assert reply.status == 200 and reply.body["revision"] == revisions[-1] + 1


@pytest.mark.slow
def test_no_election_under_saturating_config_writes_and_http_load(cluster: Cluster) -> None:
    """Nothing is killed here, so any term change is an election nobody asked for: a
    heartbeat starved of CPU, or a Raft connection timed out under load."""
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (make system-packages)")
    leader = cluster.leader()
    cluster.wait_applied(leader.put_config(probe_config("under load\n")).body["revision"])
    term = leader.node_status()["term"]
    stop = threading.Event()
    outcomes: list[WriteOutcome] = []

    def write_until_stopped(core, writer: int) -> None:
        for serial in range(100_000):  # bounded; the stop event ends it long before
            if stop.is_set():
                return
            outcomes.append(write_once(core, serial, f"load {writer}-{serial}\n"))

    writers = [
        threading.Thread(target=write_until_stopped, args=(core, n), daemon=True)
        for n, core in enumerate(cluster.cores * WRITERS_PER_CORE)
    ]
    http_load = [
        subprocess.Popen(
            [wrk, "-t1", "-c16", f"-d{LOAD_SECONDS}s", f"http://{core.listener_address}/probe"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for core in cluster.cores
    ]
    observed: set[tuple[int, str | None]] = set()
    try:
        for thread in writers:
            thread.start()
        deadline = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < deadline:
            # Sampled under load: an election and its recovery cannot hide between samples.
            for core in cluster.cores:
                with contextlib.suppress(OSError):
                    status = core.node_status(timeout=2.0)
                    observed.add((status["term"], status["leader"]))
            time.sleep(0.25)
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=10.0)
        for process in http_load:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5.0)

    print(f"\n{LOAD_SECONDS} s of load: config writes {summarize(outcomes)}; terms seen {observed}")
    assert observed == {(term, leader.raft_address)}
    assert all(outcome.result == "ok" for outcome in outcomes), summarize(outcomes)
