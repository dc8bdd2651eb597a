"""``dispa run --workers N``: N gateway processes sharing the listeners with SO_REUSEPORT.

The supervisor binds no listener itself. It starts the workers, restarts one that dies,
passes reloads on (after validating the file, so a bad file never reaches a worker),
serves the admin API from the counters the workers publish, and on SIGTERM lets every
worker drain before it exits.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import msgpack

from dispa.admin.app import start_admin
from dispa.ai.admin_api import workers_ai_routes
from dispa.config.errors import ConfigError
from dispa.config.load import load_file
from dispa.config.schema import split_address
from dispa.discovery.status import DiscoveryCollector, providers_route
from dispa.observe.log_levels import configured_log_level
from dispa.proxy.request_target import path_rules_of
from dispa.runtime.cache_admin import workers_cache_routes
from dispa.runtime.cache_metrics import WorkersCacheCollector
from dispa.runtime.single import WATCH_INTERVAL, file_fingerprint
from dispa.runtime.worker_purges import PurgeLog

log = logging.getLogger("dispa.supervisor")

# A worker that keeps dying is restarted after a growing pause, up to this many seconds.
MAX_RESTART_DELAY = 30.0
# A worker that published within this many seconds counts as alive for /readyz.
FRESH_FOR = 3.0


class WorkersView:
    """The admin view over what the workers last published (up to a second old)."""

    def __init__(self, stats_dir: Path, workers: int, supervisor: Supervisor) -> None:
        self.stats_dir = stats_dir
        self.workers = workers
        self.supervisor = supervisor

    def _published(self) -> list[dict]:
        documents = []
        for index in range(self.workers):
            path = self.stats_dir / f"worker-{index}.msgpack"
            try:
                documents.append(msgpack.unpackb(path.read_bytes(), strict_map_key=False))
            except (OSError, ValueError, msgpack.UnpackException):
                continue  # not published yet, or being replaced this instant
        return documents

    def is_ready(self) -> bool:
        if self.supervisor.stopping.is_set():
            return False
        now = time.time()
        fresh = 0
        for index in range(self.workers):
            path = self.stats_dir / f"worker-{index}.msgpack"
            try:
                if now - path.stat().st_mtime < FRESH_FOR:
                    fresh += 1
            except OSError:
                pass
        return fresh == self.workers

    def config_document(self) -> dict:
        published = self._published()
        if not published:
            return {"revision": 0, "applied_at": None, "source": "", "config": None}
        document = dict(published[0]["config"])
        document["worker_revisions"] = [p["config"]["revision"] for p in published]
        return document

    def upstreams_document(self) -> dict:
        published = self._published()
        if not published:
            return {"upstreams": []}
        merged = published[0]["upstreams"]
        # Sum the per-worker counts; health is probed by each worker, shown from the first.
        totals: dict[tuple[str, str], list[int]] = {}
        for document in published:
            for upstream in document["upstreams"]["upstreams"]:
                for endpoint in upstream["endpoints"]:
                    key = (upstream["name"], endpoint["address"])
                    counts = totals.setdefault(key, [0, 0])
                    counts[0] += endpoint["active_requests"]
                    counts[1] += endpoint["idle_connections"]
        for upstream in merged["upstreams"]:
            for endpoint in upstream["endpoints"]:
                active, idle = totals.get((upstream["name"], endpoint["address"]), (0, 0))
                endpoint["active_requests"] = active
                endpoint["idle_connections"] = idle
        return merged

    def stats_snapshots(self) -> list[dict]:
        return [document["stats"] for document in self._published()]

    def published(self) -> list[dict]:
        return self._published()

    def providers_document(self) -> dict:
        """Each worker follows the discovery providers itself: the first one's report."""
        for document in self._published():
            if document.get("providers"):
                return {**document["providers"], "role": "workers"}
        return {"role": "workers", "providers": []}


class Supervisor:
    def __init__(self, config_path: str, workers: int, log_level: str) -> None:
        self.config_path = Path(config_path)
        self.workers = workers
        self.log_level = log_level
        self.stats_dir = Path(tempfile.mkdtemp(prefix="dispa-workers-"))
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self._fingerprint = file_fingerprint(self.config_path)
        # Each worker caches on its own; purges reach them through this log.
        self.purge_log = PurgeLog(self.stats_dir)
        self.listeners = ()  # of the config last validated: purge URLs are checked against them

    async def run(self) -> int:
        config = load_file(self.config_path)
        self.listeners = config.listeners
        host, port = split_address(config.admin.address)
        view = WorkersView(self.stats_dir, self.workers, self)
        cache_routes = workers_cache_routes(
            self.purge_log,
            view.published,
            self.workers,
            lambda: [path_rules_of(listener.paths) for listener in self.listeners],
        )
        admin = await start_admin(
            view,
            host,
            port,
            [providers_route(view), *cache_routes, *workers_ai_routes(view.published)],
            [DiscoveryCollector(view), WorkersCacheCollector(view.published)],
            admin_config=config.admin,
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        keepers = [asyncio.create_task(self._keep_worker(i)) for i in range(self.workers)]
        watcher = asyncio.create_task(self._watch_file())
        log.info("supervising %d workers; admin on %s", self.workers, config.admin.address)
        await self.stopping.wait()
        watcher.cancel()
        await self._stop_workers(config.drain_timeout + 5.0)
        for keeper in keepers:
            keeper.cancel()
        await admin.close()
        shutil.rmtree(self.stats_dir, ignore_errors=True)
        log.info("all workers stopped")
        return 0

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("draining every worker")
            self.stopping.set()

    async def _keep_worker(self, index: int) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dispa",
                "--log-level",
                self.log_level,
                "run",
                "-c",
                str(self.config_path),
                "--worker-index",
                str(index),
                "--stats-dir",
                str(self.stats_dir),
                stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            self.processes[index] = process
            code = await process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > MAX_RESTART_DELAY:
                delay = 1.0  # it ran a good while: the next death starts the backoff over
            log.error("worker %d exited with status %s; restarting in %.0f s", index, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    async def _stop_workers(self, timeout: float) -> None:
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), timeout)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    process.kill()

    async def reload(self, why: str) -> None:
        self._fingerprint = file_fingerprint(self.config_path)
        try:
            self.listeners = load_file(self.config_path).listeners
        except ConfigError as error:
            log.error(
                "config reload (%s) refused, the previous config keeps serving:\n%s",
                why,
                error.render(),
            )
            return
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGHUP)

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            fingerprint = file_fingerprint(self.config_path)
            if fingerprint is not None and fingerprint != self._fingerprint:
                await self.reload("file changed")


def _die_with_parent() -> None:
    """Runs in the child before exec: if the supervisor dies, the kernel sends SIGTERM."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: an orphaned worker then lives on until stopped by hand


_PR_SET_PDEATHSIG = 1


def run_supervisor(config_path: str, workers: int) -> int:
    import uvloop

    # The level as given (``debug:all`` included): the root logger's level alone cannot
    # tell ``debug`` (libraries at warning) from ``warning``.
    supervisor = Supervisor(config_path, workers, str(configured_log_level()))
    return uvloop.run(supervisor.run())
