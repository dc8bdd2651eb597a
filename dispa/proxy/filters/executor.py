"""The gateway's bounded executor for filter work that blocks (crypto on big inputs, a
WAF engine): N threads and at most M jobs waiting.

``submit(fn, *args)`` returns a Pending answered on the event loop with ``fn``'s result,
or at once a 503 ``filter_executor_full`` LocalReply when the threads are busy and the
queue is full (counted in ``rejected``): a flood is refused at once instead of piling up
memory and latency. A job whose Pending is cancelled before a thread takes it never runs.
The gateway owns one executor: ``start(loop)`` when it starts serving, ``stop()`` when it
shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from dispa.proxy.filters.pending import Pending
from dispa.proxy.local_reply import FILTER_EXECUTOR_FULL, LocalReply, error_reply


class FilterExecutor:
    def __init__(self, threads: int = 4, queue: int = 256) -> None:
        if threads < 1 or queue < 0:
            raise ValueError("a filter executor needs at least one thread and a queue >= 0")
        self.threads = threads
        self.queue = queue
        self.capacity = threads + queue  # jobs running or waiting
        self.outstanding = 0  # changed on the loop only
        self.submitted = 0
        self.rejected = 0
        self.skipped = 0  # cancelled before a thread took them
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> FilterExecutor:
        """From the gateway config's ``filters_executor`` section."""
        return cls(config.threads, config.queue)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dispa-filter")

    def stop(self, wait: bool = True, drop_queued: bool = True) -> None:
        """Refuse new jobs, drop the queued ones (unless retired by a resize: then they
        still run), and (``wait``) join the running ones."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=drop_queued)

    def same_size(self, config) -> bool:
        return (self.threads, self.queue) == (config.threads, config.queue)

    def submit(self, fn, *args) -> Pending | LocalReply:
        """Run ``fn(*args)`` on a thread; on the loop's thread only."""
        pool = self._pool
        if pool is None or self.outstanding >= self.capacity:
            self.rejected += 1
            return error_reply(503, FILTER_EXECUTOR_FULL)
        self.outstanding += 1
        self.submitted += 1
        job = _Job(self, fn, args)
        job.pending = Pending(on_cancel=job.cancel, loop=self._loop)
        job.future = pool.submit(job.run)
        return job.pending

    def statistics(self) -> dict[str, int]:
        return {
            "threads": self.threads,
            "queue": self.queue,
            "outstanding": self.outstanding,
            "submitted": self.submitted,
            "rejected": self.rejected,
            "skipped": self.skipped,
        }

    def _settled(self, job: _Job, result, error: BaseException | None) -> None:
        # On the loop: the slot is free again, and the answer goes to the chain.
        self.outstanding -= 1
        if error is not None:
            job.pending.fail(error)
        else:
            job.pending.resolve(result)


class _Job:
    __slots__ = ("args", "cancelled", "executor", "fn", "future", "pending", "started")

    def __init__(self, executor: FilterExecutor, fn, args: tuple) -> None:
        self.executor = executor
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.started = False
        self.future = None
        self.pending: Pending | None = None

    def run(self) -> None:
        executor = self.executor
        with executor._lock:
            if self.cancelled:
                return  # cancel() saw it unstarted and freed its slot
            self.started = True
        result = error = None
        try:
            result = self.fn(*self.args)
        except BaseException as caught:  # handed to the chain, which makes it a 500
            error = caught
        loop = executor._loop
        if loop is not None and not loop.is_closed():
            # RuntimeError: the loop closed meanwhile, and nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(executor._settled, self, result, error)

    def cancel(self) -> None:
        """On the loop (Pending.cancel): a job not yet started never runs."""
        executor = self.executor
        with executor._lock:
            if self.started:
                return  # running: its slot frees when it ends, its answer is dropped
            self.cancelled = True
        if self.future is not None:
            self.future.cancel()
        executor.outstanding -= 1
        executor.skipped += 1
