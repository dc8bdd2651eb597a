"""The bounded filter executor: results on the loop, full -> 503 counted, cancel skips."""

import asyncio
import threading

from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.executor import FilterExecutor
from dispa.proxy.filters.pending import Pending
from dispa.proxy.filters.route_chain import FilterChain
from dispa.proxy.local_reply import FILTER_ERROR, FILTER_EXECUTOR_FULL, LocalReply


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_job_runs_on_a_thread_and_answers_on_the_loop():
    async def scenario():
        loop = asyncio.get_running_loop()
        executor = FilterExecutor(threads=2, queue=4)
        executor.start(loop)
        try:
            answered = loop.create_future()
            pending = executor.submit(lambda n: (threading.get_ident(), n * 2), 21)
            assert isinstance(pending, Pending)

            def on_answer(done: Pending) -> None:
                answered.set_result((threading.get_ident(), done.outcome()))

            pending.when_done(on_answer)
            loop_thread, (job_thread, value) = await answered
            assert loop_thread == threading.get_ident()  # delivered on the loop
            assert job_thread != loop_thread
            assert value == 42
            await asyncio.sleep(0)
            assert executor.outstanding == 0
        finally:
            executor.stop()

    run(scenario)


def test_a_full_executor_answers_503_at_once_and_counts_it():
    async def scenario():
        executor = FilterExecutor(threads=1, queue=1)
        executor.start(asyncio.get_running_loop())
        release = threading.Event()
        try:
            first = executor.submit(release.wait, 5)
            second = executor.submit(release.wait, 5)
            third = executor.submit(release.wait, 5)
            assert isinstance(first, Pending) and isinstance(second, Pending)
            assert isinstance(third, LocalReply)
            assert (third.status, third.reason) == (503, FILTER_EXECUTOR_FULL)
            assert executor.statistics()["rejected"] == 1
            release.set()
            done = asyncio.get_running_loop().create_future()
            second.when_done(lambda p: done.set_result(p.outcome()))
            assert await done is True
            # Slots free again once answered: a new job is accepted.
            for _ in range(100):
                if executor.outstanding == 0:
                    break
                await asyncio.sleep(0.01)
            assert isinstance(executor.submit(int, "7"), Pending)
        finally:
            release.set()
            executor.stop()

    run(scenario)


def test_a_job_cancelled_before_it_starts_never_runs():
    async def scenario():
        executor = FilterExecutor(threads=1, queue=2)
        executor.start(asyncio.get_running_loop())
        release = threading.Event()
        ran = []
        try:
            busy = executor.submit(release.wait, 5)
            queued = executor.submit(ran.append, "ran")
            assert executor.outstanding == 2
            queued.cancel()
            assert executor.outstanding == 1
            assert executor.statistics()["skipped"] == 1
            release.set()
            done = asyncio.get_running_loop().create_future()
            busy.when_done(lambda p: done.set_result(True))
            await done
            await asyncio.sleep(0.05)
            assert ran == []
        finally:
            release.set()
            executor.stop()

    run(scenario)


def test_a_filter_using_the_executor_through_the_chain():
    class Hashes(Filter):
        name = "hashes"

        def __init__(self, executor):
            self.executor = executor

        def on_request(self, ctx):
            return self.executor.submit(self.check, ctx)

        @staticmethod
        def check(ctx):
            if ctx == "bad":
                raise ValueError("bad signature")
            return None

    async def scenario():
        loop = asyncio.get_running_loop()
        executor = FilterExecutor(threads=1, queue=0)
        executor.start(loop)
        try:
            chain = FilterChain([Hashes(executor)])
            outcomes = []
            for ctx in ("good", "bad"):
                done = loop.create_future()
                chain.request.run(ctx, done.set_result)
                outcomes.append(await done)
            return outcomes
        finally:
            executor.stop()

    good, bad = run(scenario)
    assert good is None
    assert (bad.status, bad.reason) == (500, FILTER_ERROR)


def test_a_stopped_executor_refuses():
    executor = FilterExecutor(threads=1, queue=1)
    refused = executor.submit(int, "1")  # never started
    assert refused.reason == FILTER_EXECUTOR_FULL
    assert executor.rejected == 1


def test_pending_resolved_from_a_thread_is_delivered_on_the_loop():
    async def scenario():
        loop = asyncio.get_running_loop()
        pending = Pending(loop=loop)
        got = loop.create_future()
        pending.when_done(lambda p: got.set_result((threading.get_ident(), p.outcome())))
        threading.Thread(target=pending.resolve_threadsafe, args=("ok",)).start()
        return await got

    thread, value = run(scenario)
    assert thread == threading.main_thread().ident
    assert value == "ok"


def test_built_from_the_config_section():
    from dispa.config.schema import FiltersExecutor

    executor = FilterExecutor.from_config(FiltersExecutor(threads=3, queue=7))
    assert (executor.threads, executor.queue, executor.capacity) == (3, 7, 10)
