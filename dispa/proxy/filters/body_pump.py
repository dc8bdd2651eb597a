"""One body (a request's or a response's) through the route's body filters.

Made per exchange only on routes whose filters look at that body, so other routes stream
with no per-chunk call. Two ways, as the route's body need says (route_chain.py):

- ``chunks``: each piece runs through the phase as it comes; what the phase gives back
  goes on to ``send``. While a phase waits on a Pending, pieces queue here in order; past
  ``QUEUE_HIGH_WATER`` bytes the source is paused until the queue is run.
- ``whole``: pieces are buffered up to the need's limit, then the phase runs once on the
  whole body (``end=True``). One byte over the limit calls ``too_large`` at once: the
  buffer is dropped and nothing was sent on.

The pump starts closed to the phase (``open()``): pieces that arrive while the request's
head filters still wait are kept, so no body filter sees a body before the head filters
have let the request through. ``cancel()`` (the exchange ended) drops everything and
cancels a waiting phase; an end that comes later is passed straight on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from dispa.proxy.filters.chain import BodyPhase, Paused
from dispa.proxy.local_reply import LocalReply

# Bytes queued behind a waiting phase (or a closed pump) before the source is paused.
QUEUE_HIGH_WATER = 256 * 1024


class BodyPump:
    __slots__ = (
        "_end_token",
                "_held",
        "_open",
        "_paused",
        "_queue",
        "_queued_bytes",
        "_source_paused",
        "_waiting_end",
        "cancelled",
        "ctx",
        "end",
        "ended",
        "head",
        "held_bytes",
        "limit",
        "pause",
        "phase",
        "reply",
        "resume",
        "send",
        "sent_bytes",
        "too_large",
        "whole",
    )

    def __init__(
        self,
        phase: BodyPhase,
        need,
        ctx,
        *,
        send: Callable[[bytes], object],
        end: Callable[[object], object],
        reply: Callable[[LocalReply], object],
        too_large: Callable[[], object],
        pause: Callable[[], object],
        resume: Callable[[], object],
    ) -> None:
        self.phase = phase
        self.whole = need.mode == "whole"
        self.limit = need.limit
        self.ctx = ctx
        self.send = send
        self.end = end
        self.reply = reply
        self.too_large = too_large
        self.pause = pause
        self.resume = resume
        self.held_bytes = 0
        self.sent_bytes = 0
        self.head = None  # the caller's: a response head held until a whole body is through
        self._queued_bytes = 0
        self._source_paused = False
        self.cancelled = False
        self._open = False
        self._held: list[bytes] = []  # whole: the body so far; chunks: pieces not yet run
        self._queue: deque[tuple[bytes, bool]] = deque()  # chunks: pieces behind a waiting phase
        self._paused: Paused | None = None
        self.ended = False  # the source's end arrived (it may still be in the phase)
        self._end_token = None
        self._waiting_end = False  # the phase is running on the last piece

    # ---------------------------------------------------------------- the source's side

    def feed(self, data: bytes) -> None:
        if self.cancelled or not data:
            return
        if self.whole:
            self.held_bytes += len(data)
            if self.held_bytes > self.limit:
                self._refuse()
                return
            self._held.append(data)
            return
        if not self._open or self._paused is not None or self._queue:
            self._queue.append((data, False))
            self._queued_bytes += len(data)
            if self._queued_bytes > QUEUE_HIGH_WATER and not self._source_paused:
                self._source_paused = True
                self.pause()
            return
        self._run(data, False)

    def finish(self, token=None) -> None:
        """The source's end; ``token`` is handed to ``end`` once the body is through."""
        self.ended = True
        self._end_token = token
        if self.cancelled:
            self.end(token)
            return
        if self.whole:
            if self._open:
                self._run_whole()
        elif not self._open or self._paused is not None or self._queue:
            self._queue.append((b"", True))
        else:
            self._run(b"", True)

    def open(self) -> None:
        """The head filters let the request through: the body may run now."""
        if self._open or self.cancelled:
            return
        self._open = True
        if self.whole:
            if self.ended:
                self._run_whole()
            return
        self._drain()

    def cancel(self) -> None:
        self.cancelled = True
        self._held = []
        self._queue.clear()
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.cancel()

    @property
    def waiting(self) -> bool:
        """A phase waits on a Pending."""
        return self._paused is not None

    # ---------------------------------------------------------------- running the phase

    def _refuse(self) -> None:
        self._held = []
        self.cancelled = True
        self.too_large()

    def _run_whole(self) -> None:
        body = b"".join(self._held)
        self._held = []
        self._run(body, True)

    def _run(self, chunk: bytes, end: bool) -> None:
        self._waiting_end = end
        outcome = self.phase.run(self.ctx, chunk, end, self._resumed)
        if outcome.__class__ is Paused:
            self._paused = outcome
            return
        self._act(outcome, end)

    def _resumed(self, outcome) -> None:
        self._paused = None
        if self.cancelled:
            return
        if self._act(outcome, self._waiting_end):
            self._drain()

    def _act(self, outcome, end: bool) -> bool:
        """Send on what the phase gave; False when the exchange was answered instead."""
        if outcome.__class__ is LocalReply:
            self.cancel()
            self.reply(outcome)
            return False
        if outcome:
            self.sent_bytes += len(outcome)
            self.send(outcome)
        if end and not self.cancelled:  # sending may have ended the exchange
            self.end(self._end_token)
        return not self.cancelled

    def _drain(self) -> None:
        queue = self._queue
        while queue and self._paused is None and not self.cancelled:
            data, end = queue.popleft()
            self._queued_bytes -= len(data)
            self._run(data, end)
        if self._source_paused and not queue and not self.cancelled:
            self._source_paused = False
            self.resume()
