"""The ``fault`` filter: delays and aborts injected on purpose, for resilience testing.

A delay is a Pending answered by a loop timer, so a held request costs one timer handle
and no task; cancelling the Pending (client gone, a timeout fired) cancels the timer.
"""

from __future__ import annotations

import asyncio
import random as _random

from dispa.config.filters.fault import FaultFilter
from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.pending import Pending
from dispa.proxy.filters.registry import filter_type
from dispa.proxy.local_reply import FAULT_ABORT, error_reply


class _Timer:
    """Holds the timer of one delay, so the Pending made before it can cancel it."""

    __slots__ = ("handle",)

    def __init__(self) -> None:
        self.handle: asyncio.Handle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


@filter_type(FaultFilter, stage="transform")
class Fault(Filter):
    name = "fault"

    def __init__(self, config: FaultFilter, random=_random.random) -> None:
        self.delay = config.delay
        self.delay_percent = config.delay_percent
        self.abort_status = config.abort_status
        self.abort_percent = config.abort_percent
        # The reply is the same for every abort: built once, not per request.
        self._abort = (
            None if config.abort_status is None else error_reply(config.abort_status, FAULT_ABORT)
        )
        self._random = random  # returns a float in [0, 1); injectable for tests
        self.delayed = 0
        self.aborted = 0

    def on_request(self, ctx):
        if self._abort is not None and self._random() * 100.0 < self.abort_percent:
            self.aborted += 1
            return self._abort
        if self.delay is not None and self._random() * 100.0 < self.delay_percent:
            self.delayed += 1
            return self._held(self.delay)
        return None

    @staticmethod
    def _held(delay: float) -> Pending:
        # The running loop is looked up at call time: filters are built outside it.
        loop = asyncio.get_running_loop()
        timer = _Timer()
        pending = Pending(on_cancel=timer.cancel)
        if delay == 0:
            # Still a real pause: answered on the next turn of the loop, not at once.
            timer.handle = loop.call_soon(pending.resolve, None)
        else:
            timer.handle = loop.call_later(delay, pending.resolve, None)
        return pending
