"""``dispa run --workers 2``: a supervisor and two workers sharing the listener."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import time
from pathlib import Path

import aiohttp
import msgpack
import pytest
from conftest import Gateway, Processes, Upstream, async_wait_until, make_config, wait_until


def worker_pids(supervisor: int) -> dict[int, int]:
    """Worker index -> pid, for the live children of ``supervisor``."""
    workers = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == supervisor and fields[0] != "Z" and b"--worker-index" in argv:
            workers[int(argv[argv.index(b"--worker-index") + 1])] = int(entry.name)
    return workers


def stats_dir(pid: int) -> Path:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return Path(argv[argv.index(b"--stats-dir") + 1].decode())


def published_requests(directory: Path, index: int) -> int:
    """Requests a worker has answered, from the counters it publishes for the supervisor."""
    document = msgpack.unpackb((directory / f"worker-{index}.msgpack").read_bytes())
    return sum(row[-1] for row in document["stats"]["requests"])


async def fetch_all(gateway: Gateway, count: int) -> list[tuple[int, str]]:
    """``count`` requests, each on a new connection, eight at a time."""
    answers: list[tuple[int, str]] = []
    connector = aiohttp.TCPConnector(force_close=True, limit=8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.get(gateway.url("/")) as response:
                answers.append((response.status, await response.text()))

        await asyncio.gather(*(one() for _ in range(count)))
    return answers


@pytest.fixture
def workers_gateway(
    processes: Processes, tmp_path: Path, upstream_a: Upstream, upstream_b: Upstream
) -> Gateway:
    config = make_config(
        upstreams=[
            {"name": "first", "endpoints": [{"address": upstream_a.address}]},
            {"name": "second", "endpoints": [{"address": upstream_b.address}]},
        ],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "first"}],
        drain_timeout="3s",
    )
    gateway = processes.gateway(config, tmp_path, args=("--workers", "2"), ready=False)
    gateway.wait_ready(timeout=20.0)
    return gateway


async def test_two_workers_serve_reload_and_stop(workers_gateway: Gateway) -> None:
    gateway = workers_gateway
    workers = wait_until(
        lambda: len(worker_pids(gateway.pid)) == 2 and worker_pids(gateway.pid),
        what="two worker processes",
    )
    directory = stats_dir(workers[0])

    answers = await fetch_all(gateway, 200)
    assert answers == [(200, "hello from alpha\n")] * 200

    # Both workers took connections, and the supervisor's /metrics adds them up.
    def published() -> list[int]:
        counts = [published_requests(directory, index) for index in (0, 1)]
        return counts if sum(counts) == 200 else []

    per_worker = await async_wait_until(published, what="both workers to publish 200 requests")
    assert min(per_worker) > 0, per_worker
    await async_wait_until(
        lambda: gateway.metric("dispa_requests_total", route="route0") == 200,
        what="/metrics to sum the workers",
    )

    # A reload reaches every worker.
    changed = copy.deepcopy(gateway.config)
    changed["routes"][0]["upstream"] = "second"
    gateway.reload(changed)
    await async_wait_until(
        lambda: gateway.admin_json("/api/v1/config").get("worker_revisions") == [2, 2],
        what="both workers to apply revision 2",
    )
    assert await fetch_all(gateway, 40) == [(200, "hello from beta\n")] * 40

    # SIGTERM stops the supervisor and every worker.
    gateway.process.signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(gateway.process.wait, 15.0)
    assert exit_code == 0
    for pid in workers.values():
        assert not Path(f"/proc/{pid}").exists() or "(Z)" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2].join("()")
    except OSError:
        return "(gone)"


async def test_a_worker_that_dies_is_replaced(workers_gateway: Gateway) -> None:
    gateway = workers_gateway
    workers = wait_until(
        lambda: len(worker_pids(gateway.pid)) == 2 and worker_pids(gateway.pid),
        what="two worker processes",
    )
    # The worker is a child of the supervisor we started; it is killed by its own pid.
    os.kill(workers[0], signal.SIGKILL)
    started = time.monotonic()
    replaced = await async_wait_until(
        lambda: (pids := worker_pids(gateway.pid)).get(0) not in (None, workers[0]) and pids,
        timeout=10.0,
        what="a new worker 0",
    )
    assert replaced[1] == workers[1]  # the other worker was left alone
    assert time.monotonic() - started < 5.0
    assert "worker 0 exited" in gateway.stderr()
    await async_wait_until(lambda: gateway.admin_status("/readyz") == 200, what="readiness")
    assert await fetch_all(gateway, 50) == [(200, "hello from alpha\n")] * 50
