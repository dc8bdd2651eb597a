"""``dispa demo``: a local 3-core cluster, two edges and demo upstreams, and commands to try.

It uses the ready-made files in ``deploy/examples/local/`` (the same ones anyone can start
by hand), runs each core and edge as its own process with its data in a scratch folder,
applies ``gateway.yaml`` through the admin API once a leader is elected, starts the edges
and prints what to try. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from dispa.cluster import client

UPSTREAMS = ((9001, "eu-1"), (9002, "us-1"), (9003, "ap-1"))
CORES = (("core-1", 9911, 8081), ("core-2", 9912, 8082), ("core-3", 9913, 8083))
EDGES = (("edge-eu", 9921, 8181), ("edge-us", 9922, 8182))
READY_WITHIN = 20.0

TRY = """
Dispa demo: 3 cores (eu, us, ap), 2 edges (eu on :8181, us on :8182) and an upstream per
region are running on loopback. Try:
  # Geo routing: the edge locates the client (X-Forwarded-For is trusted from loopback
  # here, to play clients from elsewhere) and answers from the nearest region:
  curl -si -H 'X-Forwarded-For: 81.2.69.142'   http://127.0.0.1:8181/ | grep -i -e region -e hello
  curl -si -H 'X-Forwarded-For: 216.160.83.56' http://127.0.0.1:8181/ | grep -i -e region -e hello
  curl -si -H 'X-Forwarded-For: 175.16.199.0'  http://127.0.0.1:8182/ | grep -i -e region -e hello
  # The edge cache: the first request is a MISS, the next ones HIT (see X-Cache and Age):
  curl -si http://127.0.0.1:8181/cache/news | grep -i -e x-cache -e age -e origin
  curl -si http://127.0.0.1:8181/cache/news | grep -i -e x-cache -e age -e origin
  .venv/bin/dispa purge --admin 127.0.0.1:9911 --url http://127.0.0.1:8181/cache/news
  # The cluster: leader, revisions, and what each core and edge has applied:
  .venv/bin/dispa status --admin 127.0.0.1:9911
  curl -s http://127.0.0.1:9921/api/v1/node
  kill -9 <the leader's pid below>; then status again: a new leader within a second
  kill -9 every core: the edges keep serving (and restart from their persisted config)
Core pids: {pids}   Edge pids: {edge_pids}   Data: {data}
Ctrl-C stops everything.
"""


def examples_dir() -> Path:
    """deploy/examples/local of this checkout (the demo runs from the repository)."""
    here = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "local"
    if here.is_dir():
        return here
    return Path.cwd() / "deploy" / "examples" / "local"


def _start(args: list[str], cwd: Path, log_path: Path) -> subprocess.Popen:
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


async def _wait_for_leader(deadline: float) -> bool:
    """Until every core names the same leader and it has a quorum: applying sooner could
    meet an election still settling."""
    timeout = aiohttp.ClientTimeout(total=1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            leaders = set()
            for _, admin, _ in CORES:
                try:
                    async with session.get(f"http://127.0.0.1:{admin}/api/v1/node") as reply:
                        status = await reply.json()
                        leaders.add(status.get("leader") if status.get("has_quorum") else None)
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    leaders.add(None)
            if len(leaders) == 1 and None not in leaders:
                return True
            await asyncio.sleep(0.3)
    return False


def _scratch_copy(example: Path, data: Path) -> Path:
    """A copy of an example core or edge file in the scratch folder, so that its relative
    ``data_dir`` (read beside the file) lands there and goes with it; the geo database
    stays the example's own, made absolute."""
    config = yaml.safe_load(example.read_text())
    database = config.get("geo", {}).get("database")
    if database and not Path(database).is_absolute():
        config["geo"]["database"] = str(example.parent / database)
    path = data / example.name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def _wait_for_edges(deadline: float) -> bool:
    timeout = aiohttp.ClientTimeout(total=1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            applied = 0
            for _, admin, _ in EDGES:
                try:
                    async with session.get(f"http://127.0.0.1:{admin}/api/v1/node") as reply:
                        applied += (await reply.json()).get("applied_revision", 0) > 0
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
            if applied == len(EDGES):
                return True
            await asyncio.sleep(0.3)
    return False


async def run_cluster_demo() -> int:
    examples = examples_dir()
    if not (examples / "core-1.yaml").exists():
        print(f"cannot find the example cluster files in {examples}", file=sys.stderr)
        return 1
    data = Path(tempfile.mkdtemp(prefix="dispa-demo-"))
    processes: list[subprocess.Popen] = []
    try:
        print("starting demo upstreams on 127.0.0.1:9001-9003 (eu, us, ap) ...", flush=True)
        for port, name in UPSTREAMS:
            processes.append(
                _start(
                    ["dispa.runtime.demo_upstream", "--port", str(port), "--name", name],
                    data,
                    data / f"{name}.log",
                )
            )
        print("starting 3 cores (Raft on 7001-7003, admin on 9911-9913) ...", flush=True)
        cores = []
        for name, _, _ in CORES:
            cores.append(
                _start(
                    ["dispa", "core", "-c", str(_scratch_copy(examples / f"{name}.yaml", data))],
                    data,
                    data / f"{name}.log",
                )
            )
        processes += cores
        if not await _wait_for_leader(time.monotonic() + READY_WITHIN):
            print(
                f"the cores did not elect a leader in {READY_WITHIN:.0f} s; see the logs in "
                f"{data} (are ports 7001-7003, 8081-8083 or 9911-9913 in use?)",
                file=sys.stderr,
            )
            return 1
        print("leader elected; applying the shared config ...", flush=True)
        for attempt in range(3):
            code = await client.apply("127.0.0.1:9911", str(examples / "gateway.yaml"), False, None)
            if code == 0:
                break
            if attempt < 2:
                print("retrying in a second ...", flush=True)
                await asyncio.sleep(1.0)
        if code != 0:
            return code
        print("starting 2 edges (eu on 8181, us on 8182) ...", flush=True)
        edges = []
        for name, _, _ in EDGES:
            config = _scratch_copy(examples / f"{name}.yaml", data)
            edges.append(_start(["dispa", "edge", "-c", str(config)], data, data / f"{name}.log"))
        processes += edges
        if not await _wait_for_edges(time.monotonic() + READY_WITHIN):
            print(f"the edges did not take the config; see the logs in {data}", file=sys.stderr)
            return 1
        pids = ", ".join(f"{name}={p.pid}" for (name, _, _), p in zip(CORES, cores, strict=True))
        edge_pids = ", ".join(
            f"{name}={p.pid}" for (name, _, _), p in zip(EDGES, edges, strict=True)
        )
        print(TRY.format(pids=pids, edge_pids=edge_pids, data=data), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print("stopping the demo ...", flush=True)
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(data, ignore_errors=True)
