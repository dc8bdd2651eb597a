"""Running one phase of a route's filters: synchronously, until a handler answers later.

The fast path is a plain loop over a tuple of bound methods: no coroutine, no task, no
allocation beyond the loop. When a handler returns a ``Pending``, the runner returns a
``Paused`` handle instead of the phase's outcome; when the Pending is answered (on the
event loop) the walk continues with the next handler and ends by calling the caller's
``resume(outcome)``, with the same outcome a synchronous run would have returned.
``Paused.cancel()`` cancels the work and guarantees ``resume`` is never called after it.

A handler that raises (or whose Pending fails) is logged with the filter's name and the
phase and becomes a 500 ``filter_error`` for that request; ``on_log`` handlers that raise
are logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dispa.proxy.events import RepeatedHeaders
from dispa.proxy.filters.pending import Pending
from dispa.proxy.local_reply import FILTER_ERROR, LocalReply, error_reply

log = logging.getLogger("dispa.filters")

# A handler returns a Pending itself, never a subclass: the runners compare classes.


def _failed(names: tuple[str, ...], index: int, phase: str, error: BaseException) -> LocalReply:
    log.error("filter %s failed in %s: %s", names[index], phase, error, exc_info=error)
    return error_reply(500, FILTER_ERROR)


class Paused:
    """A phase waiting on a handler's Pending. The caller keeps it to cancel it."""

    __slots__ = ("_ctx", "_end", "_index", "_pending", "_resume", "_runner", "_value")

    def __init__(self, runner, ctx, index: int, value, end: bool, pending, resume):
        self._runner = runner
        self._ctx = ctx
        self._index = index
        self._value = value
        self._end = end
        self._pending = pending
        self._resume = resume

    def cancel(self) -> None:
        """The client went away or a timer fired: drop the work, never call resume."""
        self._resume = None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()

    @property
    def cancelled(self) -> bool:
        return self._resume is None

    def _answered(self, pending: Pending) -> None:
        if self._resume is None:
            return
        runner, index = self._runner, self._index
        try:
            answer = pending.outcome()
        except Exception as error:
            self._finish(_failed(runner.names, index, runner.phase, error))
            return
        if type(answer) is LocalReply:
            self._finish(answer)
            return
        if isinstance(answer, Pending):
            self._finish(
                _failed(
                    runner.names, index, runner.phase, TypeError("a Pending answered a Pending")
                )
            )
            return
        value = runner.carry(self._value, answer)
        outcome = runner.walk(self._ctx, value, self._end, index + 1, self)
        if outcome is not self:
            self._finish(outcome)

    def _finish(self, outcome) -> None:
        resume, self._resume = self._resume, None
        self._pending = None
        if resume is not None:
            resume(outcome)


class _Runner:
    """The handlers of one phase, in run order, with the filters' names for errors."""

    __slots__ = ("handlers", "names", "phase")

    def __init__(self, phase: str, handlers: tuple, names: tuple[str, ...]) -> None:
        self.phase = phase
        self.handlers = handlers
        self.names = names

    def __len__(self) -> int:
        return len(self.handlers)


class RequestPhase(_Runner):
    """``on_request(ctx)``: outcome None (go on) or a LocalReply."""

    __slots__ = ()

    def run(self, ctx, resume: Callable[[object], object]):
        """None, a LocalReply, or a Paused handle (``resume(outcome)`` comes later)."""
        for handler in self.handlers:
            try:
                answer = handler(ctx)
            except Exception as error:
                return _failed(self.names, _position(self, handler), self.phase, error)
            if answer is not None:
                if type(answer) is LocalReply:
                    return answer
                if type(answer) is Pending:
                    return _start_pause(
                        self, ctx, _position(self, handler), None, False, answer, resume
                    )
                return _failed(
                    self.names,
                    _position(self, handler),
                    self.phase,
                    TypeError(f"returned {answer!r}"),
                )
        return None

    def walk(self, ctx, value, end, start: int, paused: Paused):
        handlers = self.handlers
        for index in range(start, len(handlers)):
            try:
                answer = handlers[index](ctx)
            except Exception as error:
                return _failed(self.names, index, self.phase, error)
            if answer is not None:
                if type(answer) is LocalReply:
                    return answer
                if type(answer) is Pending:
                    return _continue_pause(paused, index, None, answer)
                return _failed(self.names, index, self.phase, TypeError(f"returned {answer!r}"))
        return None

    @staticmethod
    def carry(value, answer):
        return None


class HeadersPhase(_Runner):
    """``on_upstream_request`` / ``on_response(ctx, headers)``: outcome the headers to
    send (a handler's None keeps them) or a LocalReply."""

    __slots__ = ()

    def run(self, ctx, headers, resume: Callable[[object], object]):
        for handler in self.handlers:
            try:
                answer = handler(ctx, headers)
            except Exception as error:
                return _failed(self.names, _position(self, handler), self.phase, error)
            kind = answer.__class__
            # The common answers first: an edited list (the parser's RepeatedHeaders, or a
            # plain one), then "keep them".
            if kind is RepeatedHeaders or kind is list:
                headers = answer
            elif answer is not None:
                if kind is LocalReply:
                    return answer
                if kind is Pending:
                    return _start_pause(
                        self, ctx, _position(self, handler), headers, False, answer, resume
                    )
                headers = answer  # another sequence of fields
        return headers

    def walk(self, ctx, headers, end, start: int, paused: Paused):
        handlers = self.handlers
        for index in range(start, len(handlers)):
            try:
                answer = handlers[index](ctx, headers)
            except Exception as error:
                return _failed(self.names, index, self.phase, error)
            if answer is not None:
                if type(answer) is LocalReply:
                    return answer
                if type(answer) is Pending:
                    return _continue_pause(paused, index, headers, answer)
                headers = answer
        return headers

    @staticmethod
    def carry(headers, answer):
        return headers if answer is None else answer


class BodyPhase(_Runner):
    """``on_request_body`` / ``on_response_body(ctx, chunk, end)``: outcome the bytes to
    pass on (a handler's None keeps the chunk) or a LocalReply."""

    __slots__ = ()

    def run(self, ctx, chunk: bytes, end: bool, resume: Callable[[object], object]):
        for handler in self.handlers:
            try:
                answer = handler(ctx, chunk, end)
            except Exception as error:
                return _failed(self.names, _position(self, handler), self.phase, error)
            if answer is None:
                continue
            kind = answer.__class__
            if kind is LocalReply:
                return answer
            if kind is Pending:
                return _start_pause(self, ctx, _position(self, handler), chunk, end, answer, resume)
            chunk = answer
        return chunk

    def walk(self, ctx, chunk, end, start: int, paused: Paused):
        handlers = self.handlers
        for index in range(start, len(handlers)):
            try:
                answer = handlers[index](ctx, chunk, end)
            except Exception as error:
                return _failed(self.names, index, self.phase, error)
            if answer is not None:
                if type(answer) is LocalReply:
                    return answer
                if type(answer) is Pending:
                    return _continue_pause(paused, index, chunk, answer)
                chunk = answer
        return chunk

    @staticmethod
    def carry(chunk, answer):
        return chunk if answer is None else answer


class LogPhase(_Runner):
    """``on_log(ctx)``: every handler runs; one that raises is logged and skipped."""

    __slots__ = ()

    def run(self, ctx) -> None:
        for handler in self.handlers:
            try:
                handler(ctx)
            except Exception as error:
                log.error(
                    "filter %s failed in on_log: %s",
                    self.names[_position(self, handler)],
                    error,
                    exc_info=error,
                )


def _start_pause(runner, ctx, index, value, end, pending: Pending, resume) -> object:
    """First Pending of a run: a new Paused handle, or the outcome if already answered."""
    paused = Paused(runner, ctx, index, value, end, None, resume)
    return _continue_pause(paused, index, value, pending)


def _continue_pause(paused: Paused, index: int, value, pending: Pending) -> object:
    """Wait on ``pending``; if it is answered already, go on at once, synchronously."""
    paused._index = index
    paused._value = value
    if not pending.done():
        paused._pending = pending
        pending.when_done(paused._answered)
        return paused
    # Answered already: continue inline and hand back the outcome, not a handle.
    runner = paused._runner
    try:
        answer = pending.outcome()
    except Exception as error:
        return _failed(runner.names, index, runner.phase, error)
    if type(answer) is LocalReply:
        return answer
    if isinstance(answer, Pending):
        return _failed(runner.names, index, runner.phase, TypeError("a Pending answered a Pending"))
    value = runner.carry(value, answer)
    return runner.walk(paused._ctx, value, paused._end, index + 1, paused)


def _position(runner: _Runner, handler) -> int:
    """Where ``handler`` is in the phase: looked up only when it raised or paused, so the
    fast path keeps no index."""
    for index, each in enumerate(runner.handlers):
        if each is handler:
            return index
    raise LookupError(handler)
