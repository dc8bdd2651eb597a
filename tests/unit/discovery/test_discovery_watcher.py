"""The watcher: merge and naming, dropping unchanged views, throttling, failing providers."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.provider import DiscoveredEndpoint, FollowingProvider
from dispa.discovery.watcher import DiscoveryWatcher

A = DiscoveredEndpoint("10.0.0.1:80")
B = DiscoveredEndpoint("10.0.0.2:80", weight=5)
C = DiscoveredEndpoint("10.0.0.3:80", region="eu")


class ScriptedProvider(FollowingProvider):
    """Publishes the views a test puts on its queue; an exception on the queue is raised."""

    kind = "scripted"

    def __init__(self, name: str) -> None:
        super().__init__(name, RetryBackoff(initial=0.01, maximum=0.01))
        self.queue: asyncio.Queue = asyncio.Queue()

    async def follow(self, publish) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            await publish(item)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, merged) -> None:
        self.calls.append(merged)


async def settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)


async def test_merges_views_under_pool_at_provider_names() -> None:
    dns, files = ScriptedProvider("dns"), ScriptedProvider("files")
    record = Recorder()
    watcher = DiscoveryWatcher([dns, files], record, throttle=0.0)
    await watcher.start()
    try:
        dns.queue.put_nowait({"web": [B, A]})
        files.queue.put_nowait({"web": [C], "api": [A]})
        await settle()
        assert record.calls[-1] == {"api@files": [A], "web@dns": [A, B], "web@files": [C]}
    finally:
        await watcher.stop()
    assert not watcher.running


async def test_an_equal_view_is_dropped() -> None:
    dns = ScriptedProvider("dns")
    record = Recorder()
    watcher = DiscoveryWatcher([dns], record, throttle=0.0)
    await watcher.start()
    try:
        dns.queue.put_nowait({"web": [A, B]})
        await settle()
        dns.queue.put_nowait({"web": [B, A, A]})  # same set, other order: no change
        await settle()
        assert record.calls == [{"web@dns": [A, B]}]
        dns.queue.put_nowait({"web": [A]})
        await settle()
        assert record.calls == [{"web@dns": [A, B]}, {"web@dns": [A]}]
    finally:
        await watcher.stop()


async def test_a_burst_is_throttled_and_the_latest_wins() -> None:
    dns = ScriptedProvider("dns")
    record = Recorder()
    watcher = DiscoveryWatcher([dns], record, throttle=0.3)
    await watcher.start()
    try:
        dns.queue.put_nowait({"web": [A]})
        await settle()
        for view in ({"web": [B]}, {"web": [C]}, {"web": [A, C]}):
            dns.queue.put_nowait(view)
            await settle(0.01)
        await settle(0.1)
        assert record.calls == [{"web@dns": [A]}]  # still inside the throttle interval
        await settle(0.35)
        assert record.calls == [{"web@dns": [A]}, {"web@dns": [A, C]}]
    finally:
        await watcher.stop()


async def test_a_failing_provider_keeps_its_last_view_and_reports_it(caplog) -> None:
    caplog.set_level(logging.INFO, logger="dispa.discovery")
    dns = ScriptedProvider("dns")
    record = Recorder()
    watcher = DiscoveryWatcher([dns], record, throttle=0.0)
    await watcher.start()
    try:
        dns.queue.put_nowait({"web": [A, B]})
        await settle()
        dns.queue.put_nowait(ConnectionError("server gone"))
        dns.queue.put_nowait(ConnectionError("still gone"))
        await settle(0.1)
        [stats] = watcher.statistics()
        assert stats["status"] == "failing"
        assert stats["consecutive_failures"] == 2
        assert "still gone" in stats["last_error"]
        assert stats["endpoints"] == 2  # the last good view
        assert record.calls == [{"web@dns": [A, B]}]
        assert watcher.merged() == {"web@dns": [A, B]}
        dns.queue.put_nowait({"web": [A]})
        await settle()
        [stats] = watcher.statistics()
        assert stats["status"] == "ok" and stats["consecutive_failures"] == 0
        assert record.calls[-1] == {"web@dns": [A]}
        # Each failure is a warning; answering again is said once, at info.
        said = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert [level for level, _ in said] == ["WARNING", "WARNING", "INFO"], said
        assert said[-1][1] == "provider dns (scripted) answers again after 2 failures"
    finally:
        await watcher.stop()


async def test_a_failed_hand_over_is_retried_with_the_latest_view() -> None:
    dns = ScriptedProvider("dns")
    calls: list[dict] = []

    async def flaky(merged) -> None:
        calls.append(merged)
        if len(calls) == 1:
            raise RuntimeError("not the leader")

    watcher = DiscoveryWatcher([dns], flaky, throttle=0.05)
    await watcher.start()
    try:
        dns.queue.put_nowait({"web": [A]})
        await settle(0.2)
        assert calls == [{"web@dns": [A]}, {"web@dns": [A]}]
        assert watcher.current == {"web@dns": [A]} and watcher.deliveries == 1
    finally:
        await watcher.stop()


def test_provider_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="repeated: dns"):
        DiscoveryWatcher([ScriptedProvider("dns"), ScriptedProvider("dns")], Recorder())


def test_backoff_grows_is_capped_and_resets() -> None:
    backoff = RetryBackoff(initial=1.0, maximum=5.0, jitter=0.5, random_fraction=lambda: 0.5)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
    spread = RetryBackoff(initial=1.0, jitter=0.5, random_fraction=lambda: 0.0)
    assert spread.next_delay() == 0.5
