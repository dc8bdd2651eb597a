"""The exchange runs the route's filter chain: every phase, answered now or later, body
needs, errors and cancellation, through the real connection classes on in-memory
transports (memory_transport.py)."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
import uvloop
from memory_transport import Transport

from dispa.config.load import load_text
from dispa.proxy.filters.base import BodyNeed, Filter
from dispa.proxy.filters.pending import Pending
from dispa.proxy.http1.server import H1ServerConnection
from dispa.proxy.local_reply import LocalReply
from dispa.proxy.server import Gateway
from dispa.proxy.upstream.connection import UpstreamConnection

CONFIG = """
listeners: [{name: public, address: "127.0.0.1:0"}]
upstreams: [{name: app, endpoints: [{address: "127.0.0.1:9"}]}]
routes: [{name: all, match: {host: "*", path_prefix: /}, upstream: app}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
"""
GET = b"GET /p HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class Rig:
    """A gateway with one route whose filters a test sets, one pooled upstream connection
    and one client connection, all in memory."""

    def __init__(self, gateway: Gateway, filters: list[Filter]) -> None:
        self.gateway = gateway
        route = gateway.snapshot.router.match("a.test", "/", "GET", []).target
        route.install_filters(filters)
        self.route = route
        self.endpoint = gateway.snapshot.upstreams["app"].endpoints[0]
        self.upstream = UpstreamConnection(self.endpoint.pool)
        self.upstream_transport = Transport()
        self.upstream.connection_made(self.upstream_transport)
        self.endpoint.pool.put(self.upstream, time.monotonic())
        self.client = H1ServerConnection(gateway, next(iter(gateway.listeners.values())).config)
        self.client_transport = Transport()
        self.client.connection_made(self.client_transport)

    @classmethod
    async def build(cls, *filters: Filter) -> Rig:
        gateway = Gateway()
        await gateway.apply(load_text(CONFIG))
        return cls(gateway, list(filters))

    @property
    def to_upstream(self) -> bytes:
        return b"".join(self.upstream_transport.writes)

    @property
    def to_client(self) -> bytes:
        return b"".join(self.client_transport.writes)

    @property
    def active(self) -> int:
        return self.gateway.stats.requests_active

    def reasons(self) -> dict:
        return self.gateway.stats.local_replies


def run(coroutine):
    return uvloop.run(coroutine)


async def turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


class Later(Filter):
    """Answers a phase later, when the test says; counts cancellations."""

    name = "later"
    stage = "authn"

    def __init__(self, phase: str, answer=None) -> None:
        self.phase = phase
        self.answer = answer
        self.pendings: list[Pending] = []
        self.cancelled = 0

    def handler(self, phase):
        return getattr(self, "_" + phase) if phase == self.phase else None

    def _wait(self):
        pending = Pending(on_cancel=self._count_cancel)
        self.pendings.append(pending)
        return pending

    def _count_cancel(self) -> None:
        self.cancelled += 1

    def _on_request(self, ctx):
        return self._wait()

    def _on_upstream_request(self, ctx, headers):
        return self._wait()

    def _on_response(self, ctx, headers):
        return self._wait()

    def resolve(self, value=None) -> None:
        self.pendings[-1].resolve(value)


class Raising(Filter):
    name = "broken"

    def __init__(self, phase: str) -> None:
        self.phase = phase
        if phase == "on_request_body":
            self.request_body = BodyNeed("chunks")
        if phase == "on_response_body":
            self.response_body = BodyNeed("chunks")

    def handler(self, phase):
        return self._raise if phase == self.phase else None

    def _raise(self, *args):
        raise RuntimeError(f"broken in {self.phase}")


# ================================================================ on_request


def test_a_pending_request_filter_holds_the_request_until_answered():
    async def scenario():
        later = Later("on_request")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        await turns()
        assert rig.to_upstream == b"", "the request went upstream before its filter answered"
        assert rig.active == 1
        later.resolve(None)
        assert rig.to_upstream.startswith(b"GET /p HTTP/1.1\r\n")
        rig.upstream.data_received(OK)
        assert rig.to_client.startswith(b"HTTP/1.1 200 OK\r\n")
        assert rig.to_client.endswith(b"hello")
        assert rig.active == 0 and later.cancelled == 0

    run(scenario())


def test_a_pending_request_filter_may_answer_with_a_reply():
    async def scenario():
        later = Later("on_request")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        later.resolve(LocalReply(401, "denied", b"no\n"))
        assert rig.to_client.startswith(b"HTTP/1.1 401 ")
        assert rig.to_upstream == b""
        assert rig.reasons() == {"denied": 1} and rig.active == 0

    run(scenario())


def test_a_client_that_goes_away_cancels_the_pending_work():
    async def scenario():
        later = Later("on_request")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        rig.client.connection_lost(None)
        assert later.cancelled == 1
        assert rig.active == 0
        later.resolve(None)  # an answer after the cancel is dropped: nothing runs
        assert rig.to_upstream == b""

    run(scenario())


def test_a_pending_that_never_answers_is_bounded_by_the_filter_timeout():
    async def scenario():
        later = Later("on_request")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        exchange = rig.client.exchange
        assert exchange.deadline < float("inf")
        assert exchange.deadline - rig.gateway.now == pytest.approx(rig.route.filter_timeout)
        exchange.check_deadline(exchange.deadline)
        assert rig.to_client.startswith(b"HTTP/1.1 504 ")
        assert rig.reasons() == {"filter_timeout": 1}
        assert later.cancelled == 1 and rig.active == 0

    run(scenario())


def test_an_answer_ready_at_once_does_not_pause():
    class Ready(Filter):
        stage = "authn"

        def on_request(self, ctx):
            pending = Pending()
            pending.resolve(None)
            return pending

    async def scenario():
        rig = await Rig.build(Ready())
        rig.client.data_received(GET)
        assert rig.to_upstream.startswith(b"GET /p ")  # in the same call, no loop turn

    run(scenario())


# ================================================================ on_upstream_request


def test_upstream_request_filters_edit_the_head_per_try():
    class Stamp(Filter):
        stage = "observe"

        def __init__(self) -> None:
            self.endpoints = []

        def on_upstream_request(self, ctx, headers):
            self.endpoints.append(ctx.endpoint.address)
            return [*headers, (b"traceparent", b"00-abc-01")]

    async def scenario():
        stamp = Stamp()
        rig = await Rig.build(stamp)
        rig.client.data_received(GET)
        assert b"\r\ntraceparent: 00-abc-01\r\n" in rig.to_upstream
        assert stamp.endpoints == ["127.0.0.1:9"]
        rig.upstream.data_received(OK)
        assert rig.to_client.endswith(b"hello")

    run(scenario())


def test_a_pending_upstream_request_filter_sends_its_headers_when_answered():
    async def scenario():
        later = Later("on_upstream_request")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        assert rig.to_upstream == b""
        later.resolve([(b"host", b"a.test"), (b"x-token", b"t1")])
        assert b"\r\nx-token: t1\r\n" in rig.to_upstream
        rig.upstream.data_received(OK)
        assert rig.to_client.endswith(b"hello") and rig.active == 0
        assert rig.endpoint.active_requests == 0

    run(scenario())


# ================================================================ on_response


def test_a_pending_response_filter_holds_head_and_body_in_order():
    async def scenario():
        later = Later("on_response")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        rig.upstream.data_received(OK)  # head, body and end in one read
        assert rig.to_client == b"", "the head went out before its filter answered"
        later.resolve([(b"x-checked", b"yes"), (b"content-length", b"5")])
        assert rig.to_client.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"x-checked: yes\r\n" in rig.to_client and rig.to_client.endswith(b"hello")
        assert list(rig.endpoint.pool.idle) == [rig.upstream]  # reused: the body was read
        assert rig.active == 0

    run(scenario())


def test_a_held_response_that_streams_is_replayed_then_streams_on():
    async def scenario():
        later = Later("on_response")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        rig.upstream.data_received(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        assert rig.to_client == b""
        later.resolve(None)
        rig.upstream.data_received(b"2\r\nde\r\n0\r\n\r\n")
        body = rig.to_client.partition(b"\r\n\r\n")[2]
        assert body == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        assert rig.active == 0

    run(scenario())


def test_a_response_filter_may_replace_the_answer():
    async def scenario():
        later = Later("on_response")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        rig.upstream.data_received(OK)
        later.resolve(LocalReply(403, "forbidden_by_filter", b"no\n"))
        assert rig.to_client.startswith(b"HTTP/1.1 403 ")
        assert b"hello" not in rig.to_client
        assert rig.upstream.closed  # its answer was not read through: not reused
        assert rig.active == 0

    run(scenario())


# ================================================================ bodies


class Upper(Filter):
    """Upper-cases each request body piece as it comes."""

    stage = "transform"
    request_body = BodyNeed("chunks")

    def on_request_body(self, ctx, chunk, end):
        return chunk.upper()


class Whole(Filter):
    """Sees the whole request body at once; replaces it with its length."""

    stage = "transform"

    def __init__(self, limit: int = 64) -> None:
        self.request_body = BodyNeed("whole", limit)
        self.seen = []

    def on_request_body(self, ctx, chunk, end):
        self.seen.append((chunk, end))
        return b"%d bytes" % len(chunk)


def test_chunk_filters_see_each_piece_and_the_body_goes_chunked():
    async def scenario():
        rig = await Rig.build(Upper())
        rig.client.data_received(
            b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\nabc"
        )
        rig.client.data_received(b"def")
        sent = rig.to_upstream
        head, _, body = sent.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert b"content-length" not in head.lower()
        assert body == b"3\r\nABC\r\n3\r\nDEF\r\n0\r\n\r\n"

    run(scenario())


def test_a_whole_body_filter_sees_it_once_and_its_length_is_sent():
    async def scenario():
        whole = Whole()
        rig = await Rig.build(whole)
        rig.client.data_received(
            b"POST /p HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        assert rig.to_upstream == b""  # nothing before the whole body is through
        rig.client.data_received(b"2\r\nde\r\n0\r\n\r\n")
        assert whole.seen == [(b"abcde", True)]
        head, _, body = rig.to_upstream.partition(b"\r\n\r\n")
        assert b"content-length: 7\r\n" in head.lower() + b"\r\n"
        assert b"transfer-encoding" not in head.lower()
        assert body == b"5 bytes"
        rig.upstream.data_received(OK)
        assert rig.to_client.endswith(b"hello") and rig.active == 0

    run(scenario())


def test_a_declared_length_over_the_whole_body_limit_is_413_at_once():
    async def scenario():
        rig = await Rig.build(Whole(limit=10))
        rig.client.data_received(b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\n\r\n")
        assert rig.to_client.startswith(b"HTTP/1.1 413 ")
        assert rig.to_upstream == b""
        assert rig.reasons() == {"body_too_large": 1}

    run(scenario())


def test_a_streamed_body_over_the_limit_is_413_before_anything_goes_upstream():
    async def scenario():
        whole = Whole(limit=10)
        rig = await Rig.build(whole)
        rig.client.data_received(
            b"POST /p HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n12345678\r\n"
        )
        rig.client.data_received(b"8\r\n12345678\r\n")
        assert rig.to_client.startswith(b"HTTP/1.1 413 ")
        assert rig.to_upstream == b"" and whole.seen == []
        assert rig.active == 0

    run(scenario())


def test_response_body_filters_in_chunks_and_whole():
    class Lower(Filter):
        stage = "transform"
        response_body = BodyNeed("chunks")

        def on_response_body(self, ctx, chunk, end):
            return chunk.lower()

    class Wrap(Filter):
        stage = "observe"  # outside Lower: sees the response after it (reverse order)

        def __init__(self) -> None:
            self.response_body = BodyNeed("whole", 1024)

        def on_response_body(self, ctx, chunk, end):
            return b"[" + chunk + b"]"

    async def scenario():
        rig = await Rig.build(Lower(), Wrap())
        rig.client.data_received(GET)
        rig.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHEL")
        assert rig.to_client == b""  # a whole-body filter: the head waits for the body
        rig.upstream.data_received(b"LO")
        head, _, body = rig.to_client.partition(b"\r\n\r\n")
        assert body == b"[hello]"
        assert b"content-length: 7" in head.lower()
        assert list(rig.endpoint.pool.idle) == [rig.upstream] and rig.active == 0

    run(scenario())


def test_a_response_body_over_a_whole_limit_is_502_and_nothing_of_it_is_sent():
    class Small(Filter):
        stage = "transform"
        response_body = BodyNeed("whole", 4)

        def on_response_body(self, ctx, chunk, end):
            return chunk

    async def scenario():
        rig = await Rig.build(Small())
        rig.client.data_received(GET)
        rig.upstream.data_received(OK)
        assert rig.to_client.startswith(b"HTTP/1.1 502 ")
        assert b"hello" not in rig.to_client
        assert rig.reasons() == {"response_body_too_large": 1} and rig.active == 0

    run(scenario())


# ================================================================ errors


@pytest.mark.parametrize(
    "phase",
    ["on_request", "on_request_body", "on_upstream_request", "on_response"],
)
def test_a_filter_that_raises_before_the_head_goes_out_is_a_500(phase, caplog):
    async def scenario():
        rig = await Rig.build(Raising(phase))
        if phase == "on_request_body":
            rig.client.data_received(
                b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\n"
            )
            rig.client.data_received(b"hi")
        else:
            rig.client.data_received(GET)
        if phase == "on_response":
            rig.upstream.data_received(OK)
        assert rig.to_client.startswith(b"HTTP/1.1 500 "), rig.to_client[:80]
        assert rig.reasons() == {"filter_error": 1} and rig.active == 0
        if phase != "on_request_body":  # a body left unread closes the connection after
            assert not rig.client_transport.closed
        if phase in ("on_request", "on_upstream_request"):
            rig.client.data_received(GET)  # and the next request is served
            assert rig.to_client.count(b"HTTP/1.1 500 ") == 2

    run(scenario())
    assert f"filter broken failed in {phase}" in caplog.text


def test_a_response_body_filter_that_raises_cuts_the_response_off(caplog):
    async def scenario():
        rig = await Rig.build(Raising("on_response_body"))
        rig.client.data_received(GET)
        rig.upstream.data_received(OK)
        # The head was on its way (HTTP/1.1 holds it back to send it with the first body
        # bytes): all the client may see of it is a head, never the body.
        assert rig.to_client == b"" or rig.to_client.startswith(b"HTTP/1.1 200 ")
        assert b"hello" not in rig.to_client
        assert rig.client_transport.closed and rig.active == 0
        assert rig.reasons() == {"filter_error": 1}

    run(scenario())
    assert "filter broken failed in on_response_body" in caplog.text


def test_a_log_filter_that_raises_is_logged_and_the_answer_stands(caplog):
    async def scenario():
        rig = await Rig.build(Raising("on_log"))
        rig.client.data_received(GET)
        rig.upstream.data_received(OK)
        assert rig.to_client.endswith(b"hello") and rig.active == 0

    run(scenario())
    assert "filter broken failed in on_log" in caplog.text


def test_a_pending_that_fails_is_a_500():
    async def scenario():
        later = Later("on_request")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        later.pendings[-1].fail(ValueError("key server down"))
        assert rig.to_client.startswith(b"HTTP/1.1 500 ")
        assert rig.reasons() == {"filter_error": 1}

    run(scenario())


def test_a_whole_response_taken_in_steps_is_held_whole_too():
    async def scenario():
        later = Later("on_response")
        rig = await Rig.build(later)
        rig.client.data_received(GET)
        # A 5xx is not taken in one step (retry rules look at it): head, body, end.
        rig.upstream.data_received(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
        assert rig.to_client == b""
        later.resolve(None)
        assert rig.to_client.startswith(b"HTTP/1.1 503 ") and rig.to_client.endswith(b"busy")
        assert list(rig.endpoint.pool.idle) == [rig.upstream] and rig.active == 0

    run(scenario())


def test_a_request_body_filter_that_waits_queues_what_follows():
    class Slow(Filter):
        stage = "transform"
        request_body = BodyNeed("chunks")

        def __init__(self) -> None:
            self.pendings = []

        def on_request_body(self, ctx, chunk, end):
            pending = Pending()
            self.pendings.append((pending, chunk, end))
            return pending

    async def scenario():
        slow = Slow()
        rig = await Rig.build(slow)
        rig.client.data_received(b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nab")
        rig.client.data_received(b"cd")
        assert [(c, e) for _, c, e in slow.pendings] == [(b"ab", False)]  # "cd" waits
        slow.pendings[0][0].resolve(b"AB")
        assert [(c, e) for _, c, e in slow.pendings][1] == (b"cd", False)
        slow.pendings[1][0].resolve(None)  # None: the piece goes on as it came
        slow.pendings[2][0].resolve(b"!")  # the end may add bytes
        body = rig.to_upstream.partition(b"\r\n\r\n")[2]
        assert body == b"2\r\nAB\r\n2\r\ncd\r\n1\r\n!\r\n0\r\n\r\n"
        rig.upstream.data_received(OK)
        assert rig.to_client.endswith(b"hello") and rig.active == 0

    run(scenario())


@pytest.mark.parametrize("waits", [False, True], ids=["at-once", "later"])
def test_a_finished_exchange_leaves_no_cycle_for_the_garbage_collector(waits):
    # The pumps, a Paused phase and a held response hold the exchange's bound methods;
    # left behind they would make a cycle per request, freed only by the cyclic collector
    # (whose passes then grow with the traffic).
    class Both(Filter):
        stage = "transform"
        request_body = BodyNeed("whole", 1024)
        response_body = BodyNeed("chunks")

        def on_request(self, ctx):
            if waits:
                pending = Pending()
                asyncio.get_running_loop().call_soon(pending.resolve, None)
                return pending
            return None

        def on_request_body(self, ctx, chunk, end):
            return chunk

        def on_response(self, ctx, headers):
            return headers

        def on_response_body(self, ctx, chunk, end):
            return chunk

    async def scenario():
        rig = await Rig.build(Both())
        post = b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nhi"
        for _ in range(3):  # warm up: caches, first-use allocations
            rig.client.data_received(post)
            await turns()
            rig.upstream.data_received(OK)
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                rig.client.data_received(post)
                await turns()
                rig.upstream.data_received(OK)
            assert rig.active == 0
            return gc.collect()
        finally:
            gc.enable()

    assert run(scenario()) == 0  # nothing left for the cyclic collector
