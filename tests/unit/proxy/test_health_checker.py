"""ActiveHealthChecker against real servers on 127.0.0.1, with short intervals."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from dispa.config.schema import HealthCheck
from dispa.proxy.upstream.endpoint import Endpoint
from dispa.proxy.upstream.health_checker import (
    ActiveHealthChecker,
    ProbeError,
    parse_status,
    probe_status,
)

FAST = {"interval": 0.05, "timeout": 0.5}


class ScriptedUpstream:
    """A real HTTP server whose behaviour a test switches: ok, error, hang_up or silent."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[bytes] = []
        # What each probe got, in order: a status code, or the mode that gave none.
        self.answers: list[int | str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def endpoint(self) -> Endpoint:
        return Endpoint("api", "127.0.0.1", self.port)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            if self.mode in ("ok", "error"):
                status = 200 if self.mode == "ok" else 500
                self.answers.append(status)
                head = f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
                writer.write(head.encode() + b"hi")
                await writer.drain()
            elif self.mode == "silent":
                self.answers.append("silent")
                await reader.read()  # until the prober gives up and closes
            else:
                self.answers.append("hang_up")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def second_upstream() -> AsyncIterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    await server.start()
    yield server
    await server.close()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class ChangeLog:
    """on_change listener that also notes what the upstream had answered at each flip."""

    def __init__(self, upstream: ScriptedUpstream | None = None) -> None:
        self.upstream = upstream
        self.changes: list[tuple[Endpoint, bool]] = []
        self.answers_at_change: list[list[int | str]] = []

    def __call__(self, endpoint: Endpoint, healthy: bool) -> None:
        self.changes.append((endpoint, healthy))
        if self.upstream is not None:
            self.answers_at_change.append(list(self.upstream.answers))


# ---------------------------------------------------------------- probing a real server


async def test_goes_down_then_up_after_exactly_the_threshold_runs(upstream):
    endpoint = upstream.endpoint()
    config = HealthCheck(**FAST, healthy_threshold=2, unhealthy_threshold=3)
    log = ChangeLog(upstream)
    checker = ActiveHealthChecker([endpoint], config, log)
    checker.start()
    try:
        await wait_until(lambda: checker.statistics()[endpoint.address]["checks"] >= 3)
        assert log.changes == []
        assert checker.is_healthy(endpoint)

        upstream.mode = "error"
        await wait_until(lambda: len(log.changes) == 1)
        assert log.changes == [(endpoint, False)]
        # Probes run one after another, so the upstream's answers are exactly the results
        # the checker had seen when it flipped: three 500s in a row, and none before.
        answers = log.answers_at_change[0]
        assert answers[-3:] == [500, 500, 500]
        assert 500 not in answers[:-3]
        assert not checker.is_healthy(endpoint)
        stats = checker.statistics()[endpoint.address]
        assert stats["healthy"] is False
        assert stats["failures"] == 3
        assert stats["last_status"] == 500
        assert stats["last_error"] is None

        upstream.mode = "ok"
        await wait_until(lambda: len(log.changes) == 2)
        assert log.changes == [(endpoint, False), (endpoint, True)]
        answers = log.answers_at_change[1]
        assert answers[-3:] == [500, 200, 200]
        assert checker.is_healthy(endpoint)
        assert checker.statistics()[endpoint.address]["last_status"] == 200
    finally:
        await checker.stop()


async def test_a_connection_closed_without_answer_is_a_failure(upstream):
    upstream.mode = "hang_up"
    endpoint = upstream.endpoint()
    log = ChangeLog()
    checker = ActiveHealthChecker([endpoint], HealthCheck(**FAST, unhealthy_threshold=2), log)
    checker.start()
    try:
        await wait_until(lambda: log.changes == [(endpoint, False)])
        stats = checker.statistics()[endpoint.address]
        assert stats["last_status"] is None
        assert stats["last_error"] == "connection closed before a response head"
    finally:
        await checker.stop()


async def test_nothing_listening_is_a_failure():
    endpoint = Endpoint("api", "127.0.0.1", unused_port())
    log = ChangeLog()
    checker = ActiveHealthChecker([endpoint], HealthCheck(**FAST, unhealthy_threshold=2), log)
    checker.start()
    try:
        await wait_until(lambda: log.changes == [(endpoint, False)])
        stats = checker.statistics()[endpoint.address]
        assert stats["checks"] == stats["failures"] == 2
        assert stats["last_status"] is None
        assert stats["last_error"].startswith("ConnectionRefusedError")
    finally:
        await checker.stop()


async def test_no_answer_within_the_timeout_is_a_failure(upstream):
    upstream.mode = "silent"
    endpoint = upstream.endpoint()
    log = ChangeLog()
    config = HealthCheck(interval=0.02, timeout=0.1, unhealthy_threshold=1)
    checker = ActiveHealthChecker([endpoint], config, log)
    started = time.monotonic()
    checker.start()
    try:
        await wait_until(lambda: log.changes == [(endpoint, False)])
        assert time.monotonic() - started >= 0.1
        assert checker.statistics()[endpoint.address]["last_error"] == "timed out after 0.1s"
    finally:
        await checker.stop()


async def test_expected_status_range_is_inclusive(upstream):
    upstream.mode = "error"
    endpoint = upstream.endpoint()
    log = ChangeLog()
    config = HealthCheck(**FAST, unhealthy_threshold=1, expected_status=(200, 500))
    checker = ActiveHealthChecker([endpoint], config, log)
    checker.start()
    try:
        await wait_until(lambda: checker.statistics()[endpoint.address]["checks"] >= 3)
        assert log.changes == []
        assert checker.statistics()[endpoint.address]["failures"] == 0
    finally:
        await checker.stop()


async def test_request_sent_is_a_plain_get_with_host_and_user_agent(upstream):
    endpoint = upstream.endpoint()
    config = HealthCheck(path="/ready?deep=1")
    assert await probe_status(endpoint, config) == 200
    assert upstream.requests[-1] == (
        b"GET /ready?deep=1 HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{upstream.port}\r\n".encode()
        + b"User-Agent: dispa-health\r\nConnection: close\r\n\r\n"
    )
    await probe_status(endpoint, HealthCheck(host="api.internal"))
    assert b"\r\nHost: api.internal\r\n" in upstream.requests[-1]


@pytest.mark.parametrize(
    ("line", "status"), [(b"HTTP/1.1 204 No Content", 204), (b"HTTP/1.0 503", 503)]
)
def test_parse_status(line, status):
    assert parse_status(line) == status


@pytest.mark.parametrize("line", [b"", b"SSH-2.0-OpenSSH", b"HTTP/1.1 2000 OK", b"HTTP/2 200"])
def test_parse_status_rejects_what_is_not_a_status_line(line):
    with pytest.raises(ProbeError, match="malformed status line"):
        parse_status(line)


# ---------------------------------------------------------------- schedule


async def test_first_probe_comes_soon_then_one_per_interval(upstream):
    endpoint = upstream.endpoint()
    checker = ActiveHealthChecker([endpoint], HealthCheck(interval=0.5, timeout=0.5), ChangeLog())
    checker.start()
    try:
        # Jitter is at most 10 % of the interval: 0.05 s.
        await wait_until(lambda: len(upstream.requests) == 1, timeout=0.3)
        await asyncio.sleep(0.3)
        assert len(upstream.requests) == 1
        await wait_until(lambda: len(upstream.requests) == 2, timeout=0.5)
    finally:
        await checker.stop()


# ---------------------------------------------------------------- lifecycle


async def test_update_keeps_state_of_kept_endpoints_and_stops_removed_ones(
    upstream, second_upstream
):
    upstream.mode = "error"
    kept, removed = upstream.endpoint(), second_upstream.endpoint()
    log = ChangeLog()
    checker = ActiveHealthChecker([kept, removed], HealthCheck(**FAST, unhealthy_threshold=1), log)
    checker.start()
    try:
        await wait_until(lambda: (kept, False) in log.changes)
        await wait_until(lambda: checker.statistics()[removed.address]["checks"] >= 1)
        checks_before = checker.statistics()[kept.address]["checks"]

        added = Endpoint("api", "127.0.0.1", unused_port())
        checker.update([kept, added])
        assert set(checker.statistics()) == {kept.address, added.address}
        assert not checker.is_healthy(kept)  # not reset to the initial healthy state
        assert checker.statistics()[kept.address]["checks"] >= checks_before

        await wait_until(lambda: (added, False) in log.changes)
        requests_to_removed = len(second_upstream.requests)
        await asyncio.sleep(0.15)
        assert len(second_upstream.requests) == requests_to_removed
        assert checker.statistics()[kept.address]["checks"] > checks_before
        assert (kept, False) == log.changes[0] and (kept, True) not in log.changes
    finally:
        await checker.stop()


async def test_update_before_start_only_records_endpoints(upstream):
    endpoint = upstream.endpoint()
    checker = ActiveHealthChecker([], HealthCheck(**FAST), ChangeLog())
    checker.update([endpoint, endpoint])
    await asyncio.sleep(0.1)
    assert upstream.requests == []
    checker.start()
    try:
        await wait_until(lambda: checker.statistics()[endpoint.address]["checks"] >= 2)
    finally:
        await checker.stop()


async def test_stop_leaves_no_tasks_and_can_be_called_twice(upstream):
    before = asyncio.all_tasks()
    endpoints = [upstream.endpoint() for _ in range(3)]
    checker = ActiveHealthChecker(endpoints, HealthCheck(**FAST), ChangeLog())
    checker.start()
    checker.start()  # already running: no second set of tasks
    assert len(asyncio.all_tasks() - before) == 3
    await wait_until(lambda: len(upstream.requests) >= 3)
    checker.update(endpoints[:1])  # two tasks cancelled here, awaited by stop()
    await checker.stop()
    assert asyncio.all_tasks() - before == set()
    await checker.stop()
    requests_after_stop = len(upstream.requests)
    await asyncio.sleep(0.1)
    assert len(upstream.requests) == requests_after_stop


async def test_a_failing_listener_does_not_stop_probing(upstream):
    upstream.mode = "error"
    endpoint = upstream.endpoint()

    def broken_listener(endpoint: Endpoint, healthy: bool) -> None:
        raise RuntimeError("listener bug")

    config = HealthCheck(**FAST, unhealthy_threshold=1)
    checker = ActiveHealthChecker([endpoint], config, broken_listener)
    checker.start()
    try:
        await wait_until(lambda: checker.statistics()[endpoint.address]["checks"] >= 3)
        assert not checker.is_healthy(endpoint)
    finally:
        await checker.stop()


def test_unknown_endpoint_counts_as_healthy():
    checker = ActiveHealthChecker([], HealthCheck(), ChangeLog())
    assert checker.is_healthy(Endpoint("api", "127.0.0.1", 1))
