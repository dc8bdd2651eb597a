"""The phase runners (filters/chain.py): every phase sync and pending, errors, cancel."""

import asyncio
import logging

import pytest

from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.pending import Pending
from dispa.proxy.filters.route_chain import FilterChain
from dispa.proxy.local_reply import FILTER_ERROR, LocalReply, error_reply

DENIED = error_reply(403, "denied")


class Ctx:
    def __init__(self) -> None:
        self.seen: list[str] = []


class Recorder(Filter):
    """Records each phase it runs in, answering as told per phase."""

    def __init__(self, name: str, stage: str = "transform", answers=None) -> None:
        self.name = name
        self.stage = stage
        self.answers = answers or {}

    def _answer(self, ctx, phase, default):
        ctx.seen.append(f"{self.name}.{phase}")
        answer = self.answers.get(phase, default)
        if isinstance(answer, Exception):
            raise answer
        return answer() if callable(answer) else answer

    def on_request(self, ctx):
        return self._answer(ctx, "request", None)

    def on_request_body(self, ctx, chunk, end):
        return self._answer(ctx, "request_body", chunk + self.name.encode())

    def on_upstream_request(self, ctx, headers):
        return self._answer(ctx, "upstream_request", [*headers, (b"x-up", self.name.encode())])

    def on_response(self, ctx, headers):
        return self._answer(ctx, "response", [*headers, (b"x-down", self.name.encode())])

    def on_response_body(self, ctx, chunk, end):
        return self._answer(ctx, "response_body", chunk + self.name.encode())

    def on_log(self, ctx):
        return self._answer(ctx, "log", None)


def never_resume(outcome):
    raise AssertionError(f"resume called for a synchronous run: {outcome!r}")


# ------------------------------------------------------------------ synchronous runs


def test_every_phase_runs_synchronously_in_order():
    chain = FilterChain([Recorder("a"), Recorder("b")])
    ctx = Ctx()
    assert chain.request.run(ctx, never_resume) is None
    assert chain.request_body.run(ctx, b"x", True, never_resume) == b"xab"
    assert chain.upstream_request.run(ctx, [], never_resume) == [(b"x-up", b"a"), (b"x-up", b"b")]
    # Response phases run in reverse.
    assert chain.response.run(ctx, [], never_resume) == [(b"x-down", b"b"), (b"x-down", b"a")]
    assert chain.response_body.run(ctx, b"y", False, never_resume) == b"yba"
    chain.log.run(ctx)
    assert ctx.seen == [
        "a.request", "b.request",
        "a.request_body", "b.request_body",
        "a.upstream_request", "b.upstream_request",
        "b.response", "a.response",
        "b.response_body", "a.response_body",
        "a.log", "b.log",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("phase", "args"),
    [
        ("request", ()),
        ("request_body", (b"x", True)),
        ("upstream_request", ([],)),
        ("response", ([],)),
        ("response_body", (b"x", True)),
    ],
)
def test_a_local_reply_stops_the_phase(phase, args):
    first, second = Recorder("a", answers={phase: DENIED}), Recorder("b")
    chain = FilterChain([first, second])
    ctx = Ctx()
    assert getattr(chain, phase).run(ctx, *args, never_resume) is DENIED
    # Response-side phases run backwards: b ran first there, then a answered.
    expected = ["b." + phase, "a." + phase] if phase.startswith("response") else ["a." + phase]
    assert ctx.seen == expected


def test_none_from_a_headers_or_body_handler_keeps_the_value():
    chain = FilterChain(
        [Recorder("a", answers={"response": None, "request_body": None, "upstream_request": None})]
    )
    headers = [(b"k", b"v")]
    assert chain.response.run(Ctx(), headers, never_resume) is headers
    assert chain.upstream_request.run(Ctx(), headers, never_resume) is headers
    assert chain.request_body.run(Ctx(), b"same", True, never_resume) == b"same"


def test_phases_nobody_defines_are_none():
    class OnlyRequest(Filter):
        def on_request(self, ctx):
            return None

    chain = FilterChain([OnlyRequest()])
    assert chain.request is not None
    for phase in ("request_body", "upstream_request", "response", "response_body", "log"):
        assert getattr(chain, phase) is None, phase
    empty = FilterChain([])
    assert empty.request is None and empty.log is None


# ------------------------------------------------------------------ exceptions


@pytest.mark.parametrize(
    ("phase", "args"),
    [
        ("request", ()),
        ("request_body", (b"x", True)),
        ("upstream_request", ([],)),
        ("response", ([],)),
        ("response_body", (b"x", True)),
    ],
)
def test_a_phase_that_raises_is_a_500_logged_with_filter_and_phase(phase, args, caplog):
    chain = FilterChain([Recorder("broken", answers={phase: RuntimeError("boom")}), Recorder("b")])
    with caplog.at_level(logging.ERROR, logger="dispa.filters"):
        outcome = getattr(chain, phase).run(Ctx(), *args, never_resume)
    assert isinstance(outcome, LocalReply)
    assert (outcome.status, outcome.reason) == (500, FILTER_ERROR)
    assert f"filter broken failed in on_{phase}: boom" in caplog.text


def test_on_log_exceptions_are_logged_and_the_rest_still_runs(caplog):
    chain = FilterChain([Recorder("a", answers={"log": ValueError("bad")}), Recorder("b")])
    ctx = Ctx()
    with caplog.at_level(logging.ERROR, logger="dispa.filters"):
        assert chain.log.run(ctx) is None
    assert ctx.seen == ["a.log", "b.log"]
    assert "filter a failed in on_log: bad" in caplog.text


def test_a_handler_returning_something_odd_from_on_request_is_a_500(caplog):
    chain = FilterChain([Recorder("odd", answers={"request": 42})])
    with caplog.at_level(logging.ERROR, logger="dispa.filters"):
        outcome = chain.request.run(Ctx(), never_resume)
    assert outcome.reason == FILTER_ERROR


# ------------------------------------------------------------------ pending


class Resumes:
    def __init__(self) -> None:
        self.outcomes: list = []

    def __call__(self, outcome) -> None:
        self.outcomes.append(outcome)


@pytest.mark.parametrize(
    ("phase", "args", "answer", "expected"),
    [
        ("request", (), None, None),
        ("request_body", (b"x", True), b"changed", b"changedb"),
        ("upstream_request", ([],), [(b"p", b"1")], [(b"p", b"1"), (b"x-up", b"b")]),
        # Response-side phases run backwards: "a" pauses last, its answer is the outcome.
        ("response", ([],), [(b"p", b"1")], [(b"p", b"1")]),
        ("response_body", (b"x", True), b"changed", b"changed"),
    ],
)
def test_every_phase_pauses_on_a_pending_and_resumes_with_the_rest(phase, args, answer, expected):
    pending = Pending()
    chain = FilterChain([Recorder("a", answers={phase: pending}), Recorder("b")])
    ctx = Ctx()
    resume = Resumes()
    paused = getattr(chain, phase).run(ctx, *args, resume)
    assert not isinstance(paused, LocalReply | bytes | list) and paused is not None
    ran_before = list(ctx.seen)
    pending.resolve(answer)
    assert resume.outcomes == [expected]
    # After the answer, the handlers after "a" ran exactly once.
    assert len(ctx.seen) == len(ran_before) + (0 if phase.startswith("response") else 1)


def test_a_pending_answered_with_a_local_reply_ends_the_phase():
    pending = Pending()
    chain = FilterChain([Recorder("a", answers={"request": pending}), Recorder("b")])
    ctx, resume = Ctx(), Resumes()
    chain.request.run(ctx, resume)
    pending.resolve(DENIED)
    assert resume.outcomes == [DENIED]
    assert ctx.seen == ["a.request"]


def test_a_pending_that_fails_is_a_500(caplog):
    pending = Pending()
    chain = FilterChain([Recorder("slow", answers={"request": pending})])
    resume = Resumes()
    chain.request.run(Ctx(), resume)
    with caplog.at_level(logging.ERROR, logger="dispa.filters"):
        pending.fail(OSError("key server down"))
    assert [(o.status, o.reason) for o in resume.outcomes] == [(500, FILTER_ERROR)]
    assert "filter slow failed in on_request: key server down" in caplog.text


def test_an_answered_pending_continues_at_once_without_resume():
    answered = Pending()
    answered.resolve(None)
    chain = FilterChain([Recorder("a", answers={"request": answered}), Recorder("b")])
    ctx = Ctx()
    assert chain.request.run(ctx, never_resume) is None
    assert ctx.seen == ["a.request", "b.request"]


def test_two_pendings_in_one_phase_resume_once_at_the_end():
    first, second = Pending(), Pending()
    chain = FilterChain(
        [Recorder("a", answers={"request": first}), Recorder("b", answers={"request": second})]
    )
    ctx, resume = Ctx(), Resumes()
    paused = chain.request.run(ctx, resume)
    first.resolve(None)
    assert resume.outcomes == [] and ctx.seen == ["a.request", "b.request"]
    second.resolve(None)
    assert resume.outcomes == [None]
    assert paused.cancelled  # finished: cancel is now a no-op
    paused.cancel()
    assert resume.outcomes == [None]


def test_cancel_cancels_the_work_and_resume_is_never_called():
    cancelled = []
    pending = Pending(on_cancel=lambda: cancelled.append(True))
    chain = FilterChain([Recorder("a", answers={"request": pending}), Recorder("b")])
    ctx, resume = Ctx(), Resumes()
    paused = chain.request.run(ctx, resume)
    paused.cancel()
    assert cancelled == [True]
    pending.resolve(None)  # a late answer is dropped
    assert resume.outcomes == []
    assert ctx.seen == ["a.request"]


def test_pending_resolved_later_on_a_real_loop():
    async def scenario():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        chain = FilterChain(
            [Recorder("a", answers={"request": lambda: Pending.from_future(future)}), Recorder("b")]
        )
        ctx, done = Ctx(), loop.create_future()
        paused = chain.request.run(ctx, done.set_result)
        assert not done.done()
        loop.call_later(0.05, future.set_result, DENIED)
        outcome = await asyncio.wait_for(done, 5)
        return paused, outcome, ctx.seen

    paused, outcome, seen = asyncio.run(scenario())
    assert paused.cancelled  # finished: resume was called, nothing more can happen
    assert outcome is DENIED
    assert seen == ["a.request"]


def test_cancel_on_a_real_loop_cancels_the_future():
    async def scenario():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        answers = {"request": lambda: Pending.from_future(future)}
        chain = FilterChain([Recorder("a", answers=answers)])
        resume = Resumes()
        paused = chain.request.run(Ctx(), resume)
        paused.cancel()
        await asyncio.sleep(0.01)
        return future.cancelled(), resume.outcomes

    cancelled, outcomes = asyncio.run(scenario())
    assert cancelled is True
    assert outcomes == []
