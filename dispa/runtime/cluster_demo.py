"""``dispa demo``: a local 3-core cluster with demo upstreams, and commands to try.

It uses the ready-made files in ``deploy/examples/local/`` (the same ones anyone can start
by hand), runs each core as its own process with its data in a scratch folder, applies
``gateway.yaml`` through the admin API once a leader is elected, and prints what to try.
Ctrl-C stops every process it started.
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

from dispa.cluster import client

UPSTREAMS = ((9001, "upstream-9001"), (9002, "upstream-9002"))
CORES = (("core-1", 9911, 8081), ("core-2", 9912, 8082), ("core-3", 9913, 8083))
READY_WITHIN = 20.0

TRY = """
Dispa demo: 3 cores (eu, us, ap) and two upstreams are running on loopback. Try:
  curl -i http://127.0.0.1:8081/                     # served by core-1, round robin upstreams
  curl -i http://127.0.0.1:8082/hello                # the same config on core-2
  .venv/bin/dispa status --admin 127.0.0.1:9911      # leader, revisions, lag of each core
  .venv/bin/dispa apply -f {examples}/gateway.yaml --admin 127.0.0.1:9912 --dry-run
  curl -s http://127.0.0.1:9911/api/v1/config/history
  kill -9 <the leader's pid below>; then status again: a new leader within a second
Core pids: {pids}   Data: {data}
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
    timeout = aiohttp.ClientTimeout(total=1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            for _, admin, _ in CORES:
                try:
                    async with session.get(f"http://127.0.0.1:{admin}/api/v1/node") as reply:
                        status = await reply.json()
                        if status.get("leader"):
                            return True
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
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
        print("starting demo upstreams on 127.0.0.1:9001 and :9002 ...", flush=True)
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
                    ["dispa", "core", "-c", str(examples / f"{name}.yaml")],
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
        code = await client.apply("127.0.0.1:9911", str(examples / "gateway.yaml"), False, None)
        if code != 0:
            return code
        pids = ", ".join(f"{name}={p.pid}" for (name, _, _), p in zip(CORES, cores, strict=True))
        print(TRY.format(examples=examples, pids=pids, data=data), flush=True)
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
