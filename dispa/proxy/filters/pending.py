"""A phase's answer that comes later: from a future, a callback or the filter executor.

A filter phase returns a ``Pending`` instead of its answer; the chain (chain.py) stops,
registers one callback and carries on when the answer arrives. Everything happens on the
event loop: a thread hands its answer over with ``resolve_threadsafe``. ``cancel()`` (the
client went away, or the exchange's timer fired) cancels the work behind it and
guarantees that no callback runs afterwards.

A Pending that never resolves holds nothing but memory: the exchange's timers bound it,
and the exchange must cancel it when they fire (docs/filters.md, "What the exchange does").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_WAITING, _DONE, _CANCELLED = 0, 1, 2


class Pending:
    __slots__ = ("_callback", "_error", "_loop", "_on_cancel", "_result", "_state")

    def __init__(
        self,
        on_cancel: Callable[[], object] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._state = _WAITING
        self._result = None
        self._error: BaseException | None = None
        self._callback: Callable[[Pending], object] | None = None
        self._on_cancel = on_cancel
        self._loop = loop

    # ---------------------------------------------------------------- the producer's side

    def resolve(self, result=None) -> None:
        """The answer: what the phase would have returned at once. On the loop's thread."""
        if self._state != _WAITING:
            return  # cancelled meanwhile (or answered twice): the answer is dropped
        self._state = _DONE
        self._result = result
        self._finish()

    def fail(self, error: BaseException) -> None:
        """The work raised: the request gets 500 filter_error (chain.py logs it)."""
        if self._state != _WAITING:
            return
        self._state = _DONE
        self._error = error
        self._finish()

    def resolve_threadsafe(self, result=None) -> None:
        """``resolve`` from any thread: the answer is delivered on the loop."""
        self._loop_or_running().call_soon_threadsafe(self.resolve, result)

    def fail_threadsafe(self, error: BaseException) -> None:
        self._loop_or_running().call_soon_threadsafe(self.fail, error)

    # ---------------------------------------------------------------- the chain's side

    def done(self) -> bool:
        return self._state == _DONE

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def outcome(self):
        """The answer of a done Pending; raises the work's exception if it failed."""
        if self._error is not None:
            raise self._error
        return self._result

    def when_done(self, callback: Callable[[Pending], object]) -> None:
        """Call ``callback(self)`` once, when answered (at once if it already is)."""
        if self._state == _DONE:
            callback(self)
        elif self._state == _WAITING:
            self._callback = callback

    def cancel(self) -> None:
        """Stop waiting: the work is cancelled if it can be, no callback runs after this."""
        if self._state != _WAITING:
            return
        self._state = _CANCELLED
        self._callback = None
        on_cancel, self._on_cancel = self._on_cancel, None
        if on_cancel is not None:
            on_cancel()

    # ---------------------------------------------------------------- makers

    @classmethod
    def from_future(cls, future: asyncio.Future) -> Pending:
        """A Pending answered by an asyncio future (or task); cancel() cancels it."""
        pending = cls(on_cancel=future.cancel)

        def settled(done: asyncio.Future) -> None:
            if done.cancelled():
                pending.cancel()
            elif done.exception() is not None:
                pending.fail(done.exception())
            else:
                pending.resolve(done.result())

        future.add_done_callback(settled)
        return pending

    def _finish(self) -> None:
        self._on_cancel = None
        callback, self._callback = self._callback, None
        if callback is not None:
            callback(self)

    def _loop_or_running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("a Pending answered from a thread needs the loop it belongs to")
        return self._loop
