"""What survives ``kill -9`` of every core at once: the Raft journal and snapshot on disk.

Covered:
- a restart after writes with the journal alone (no log compaction has happened yet:
  pysyncobj compacts after 5000 entries or 300 s, see raft_store.py);
- a restart after more than 5000 log entries (64 parallel writers, about 12 s), so that
  every core has compacted its log into a snapshot (``raft.snapshot``, msgpack +
  zstandard), with more writes on top: the state must come back from snapshot plus
  journal tail.
Not covered: the time-based compaction (300 s), and a crash in the middle of writing a
snapshot.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from .conftest import (
    Cluster,
    ConfigWriter,
    WriteOutcome,
    assert_acknowledged_writes_durable,
    probe_config,
    summarize,
    wait_until,
)

# pysyncobj compacts the log past this many entries (logCompactionMinEntries in raft_store).
LOG_COMPACTION_MIN_ENTRIES = 5000


def restart_everything(cluster: Cluster) -> float:
    """kill -9 all cores, start them again on the same files; seconds until ready."""
    cluster.kill_all()
    started = time.monotonic()
    for core in cluster.cores:
        core.start()
    cluster.wait_ready()
    return time.monotonic() - started


def assert_recovered(cluster: Cluster, outcomes: list[WriteOutcome]) -> None:
    """After a restart: every acknowledged write is back on every core, each core has
    applied the latest revision to its data plane, and revisions continue from there."""
    acknowledged = [o for o in outcomes if o.result == "ok"]
    last = max(acknowledged, key=lambda o: o.revision)
    # Ready (a leader) is not yet caught up: entries past the commit index saved in the
    # journal's meta file (stored once a second) are applied when the new leader commits.
    cluster.wait_applied(last.revision)
    assert cluster.cluster_status()["revision"] == last.revision
    assert_acknowledged_writes_durable(outcomes, cluster.cores)
    for core in cluster.cores:
        assert core.probe().body == last.body, f"{core.node_id} serves an old config"
    reply = cluster.leader().put_config(probe_config("after the restart\n"))
    assert reply.status == 200 and reply.body["revision"] == last.revision + 1


def test_a_full_cluster_restart_recovers_every_acknowledged_revision(cluster: Cluster) -> None:
    writer = ConfigWriter(cluster, max_writes=30, max_seconds=20.0, tag="durable")
    writer.start()
    writer.wait_acknowledged(30, timeout=20.0)
    outcomes = writer.stop_and_join()
    assert all(o.result == "ok" for o in outcomes), summarize(outcomes)

    took = restart_everything(cluster)
    print(f"\ncluster ready {took:.2f} s after kill -9 of all three cores and restart")

    assert_recovered(cluster, outcomes)
    for core in cluster.cores:
        assert not (core.data_dir / "raft.snapshot").exists(), "journal-only scenario"


async def _write_concurrently(
    address: str, count: int, concurrency: int, attempts: int = 3
) -> tuple[int, list[str]]:
    """``count`` distinct config writes through ``concurrency`` parallel clients (pysyncobj
    batches them), to grow the Raft log quickly. A write that is refused (a loaded machine
    can delay a commit past its deadline) is tried again, up to ``attempts`` times: the test
    needs the log to grow, and every refusal is returned so a real fault still shows.
    Returns how many were acknowledged and what each refusal was."""
    pending = iter(range(count))
    acknowledged = 0
    refusals: list[str] = []
    timeout = aiohttp.ClientTimeout(total=10)

    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def write(index: int) -> bool:
            body = json.dumps(probe_config(f"filler {index}\n"))
            try:
                async with session.put(
                    f"http://{address}/api/v1/config",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as reply:
                    text = await reply.text()
                    if reply.status == 200:
                        return True
                    refusals.append(f"{reply.status} {text[:120]}")
            except (TimeoutError, aiohttp.ClientError) as error:
                refusals.append(repr(error))
            return False

        async def client() -> None:
            nonlocal acknowledged
            for index in pending:
                for _ in range(attempts):
                    if await write(index):
                        acknowledged += 1
                        break
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return acknowledged, refusals


def test_a_full_cluster_restart_after_log_compaction_recovers_from_the_snapshot(
    cluster: Cluster,
) -> None:
    filler = LOG_COMPACTION_MIN_ENTRIES + 300
    started = time.monotonic()
    acknowledged, refusals = asyncio.run(
        _write_concurrently(cluster.leader().admin_address, filler, 64)
    )
    assert acknowledged == filler, f"refused after retries; refusals: {refusals[:5]}"
    # Refusals that a retry fixed are allowed, but not many: the cluster was never cut off.
    assert len(refusals) <= filler // 20, f"{len(refusals)} refusals: {refusals[:5]}"
    wait_until(
        lambda: all((core.data_dir / "raft.snapshot").exists() for core in cluster.cores),
        timeout=30.0,
        what="every core to compact its log into raft.snapshot",
    )
    took = time.monotonic() - started
    print(f"\n{filler} writes and a log compaction on every core in {took:.1f} s")
    # Writes after the compaction live in the journal only, on top of the snapshot.
    writer = ConfigWriter(cluster, max_writes=20, max_seconds=20.0, tag="after-compaction")
    writer.start()
    writer.wait_acknowledged(20, timeout=20.0)
    outcomes = writer.stop_and_join()
    assert all(o.result == "ok" for o in outcomes), summarize(outcomes)

    took = restart_everything(cluster)
    print(f"cluster ready {took:.2f} s after kill -9 of all three cores and restart")

    assert_recovered(cluster, outcomes)
