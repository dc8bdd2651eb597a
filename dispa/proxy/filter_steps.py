"""The exchange's filter steps: running the route's filter chain, waiting on a Pending,
resuming, and the body pumps (docs/filters.md, "What the exchange does around a pause").

A slotted base class of ``Exchange``, as cache_step.py and grpc/exchange_steps.py are:
the same journey, kept apart so the journey reads one phase at a time. Every phase is
skipped with one test when the route has no filter for it.

Around a pause:
- reading from the client goes on while a head phase waits (a body piles up only to the
  exchange's own high-water marks, which pause it), so a client that goes away is seen
  at once and cancels the work;
- the exchange's timers go on; when none is armed, the route's ``filter_timeout`` bounds
  the wait (504 ``filter_timeout``);
- ``_finish`` cancels whatever still waits, so nothing of a finished exchange runs again.
"""

from __future__ import annotations

import logging

from dispa.proxy import local_reply as reasons
from dispa.proxy.filters.body_pump import BodyPump
from dispa.proxy.filters.chain import Paused
from dispa.proxy.held_response import HeldResponse
from dispa.proxy.local_reply import LocalReply, error_reply

NO_DEADLINE = float("inf")
log = logging.getLogger("dispa.filters")


def _never_resumed(outcome) -> None:
    return None


class FilterSteps:
    __slots__ = ()

    # ================================================================ waiting and resuming

    def _wait_for_filter(self, paused: Paused) -> None:
        self._paused = paused
        if self.deadline == NO_DEADLINE:
            self._arm_deadline(self.gateway.now + self.route.filter_timeout, "filter")

    def _filter_answered(self) -> None:
        self._paused = None
        if self._deadline_kind == "filter":
            self.deadline = NO_DEADLINE
            self._deadline_kind = ""

    def _on_filter_timeout(self) -> None:
        if self.finished:
            return
        self._cancel_filter_work()
        answer = error_reply(504, reasons.FILTER_TIMEOUT)
        if not self.response_started:
            self.reply(answer)
            return
        # The head is out: all that is left is to cut the response off.
        self.ctx.reason = answer.reason
        self.gateway.stats.record_local_reply(answer.reason)
        self._drop_connection()
        self.downstream.abort()
        self._finish()

    def _cancel_filter_work(self) -> None:
        """The exchange ends: whatever still waits is cancelled, and never resumes. The
        pumps and a held response are let go too: they hold the exchange's bound methods,
        and a cycle left behind would wait for the cyclic garbage collector (whose passes
        then grow with the traffic). Body bytes that still come are dropped unfiltered."""
        paused = self._paused
        if paused is not None:
            self._paused = None
            paused.cancel()
        if self._request_pump is not None:
            self._request_pump.cancel()
            self._request_pump = None
        if self._response_pump is not None:
            self._response_pump.cancel()
            self._response_pump = None
        self._held_response = None

    def _resume_safely(self, step, *args) -> None:
        """A resumption runs inside whatever answered the Pending (a timer, a thread's
        hand-over): an exception must end this exchange, not escape into the loop."""
        try:
            step(*args)
        except Exception:
            self.gateway.internal_error(self)

    # ================================================================ on_request

    def _request_filters_stopped(self, outcome) -> None:
        """The on_request filters did not let the request through at once: they answered
        (a LocalReply) or will (a Paused phase; the journey goes on in the resume)."""
        if outcome.__class__ is Paused:
            self._wait_for_filter(outcome)
        else:
            self.reply(outcome)

    def _request_filters_resumed(self, outcome) -> None:
        self._filter_answered()
        if outcome is not None:
            self._resume_safely(self.reply, outcome)
        else:
            self._resume_safely(self.start, True)

    # ================================================================ request body

    def _start_request_pump(self, need) -> bool:
        """A route whose filters read the request body: False when the body is refused
        at once (a declared length over a whole-body limit: 413, nothing sent on)."""
        request = self.request
        if need.mode == "whole":
            if request.content_length is not None and request.content_length > need.limit:
                self.reply(error_reply(413, reasons.BODY_TOO_LARGE))
                return False
            self._body_chunked = False  # sent with the filtered body's own length
        else:
            self._body_chunked = True  # pieces may change size: chunked, length dropped
        downstream = self.downstream
        self._request_pump = BodyPump(
            self.route.request_body_phase,
            need,
            self.ctx,
            send=self._pass_request_data,
            end=self.on_request_end,
            reply=self.reply,
            too_large=self._request_body_too_large,
            pause=lambda: downstream.pause_reading("body_filter"),
            resume=lambda: downstream.resume_reading("body_filter"),
        )
        return True

    def _request_body_too_large(self) -> None:
        self.reply(error_reply(413, reasons.BODY_TOO_LARGE))

    def _filtered_request_length(self):
        """The Content-Length to send upstream after body filters: the filtered body's
        when a whole-body filter ran, none when chunk filters may have changed its size."""
        pump = self._request_pump
        return pump.sent_bytes if pump.whole else None

    # ================================================================ on_upstream_request

    def _run_upstream_request_filters(self, phase) -> bool:
        """True when the try waits (or was answered); else the headers are set to send."""
        ctx = self.ctx
        outcome = phase.run(ctx, ctx.request_headers, self._upstream_request_resumed)
        cls = outcome.__class__
        if cls is Paused:
            self._wait_for_filter(outcome)
            return True
        if cls is LocalReply:
            self.reply(outcome)
            return True
        self._upstream_headers = outcome
        self._head = None  # built again for each try, from the headers the filters gave
        return False

    def _upstream_request_resumed(self, outcome) -> None:
        self._filter_answered()
        if outcome.__class__ is LocalReply:
            self._resume_safely(self.reply, outcome)
            return
        self._upstream_headers = outcome
        self._head = None
        self._resume_safely(self._try_upstream, self.ctx.endpoint)

    # ================================================================ on_response

    def _response_filters_stopped(self, outcome, response, whole_body=None) -> None:
        """The on_response filters did not give headers at once: they answered (a
        LocalReply replaces the upstream's answer) or will (a Paused phase). While they
        wait, the upstream connection is paused and its events are held
        (held_response.py); ``whole_body``: the body of a whole response, read with its
        head, held too."""
        if outcome.__class__ is LocalReply:
            self.reply(outcome)
            return
        conn = self.conn
        held = self._held_response = HeldResponse(self, response, conn)
        if whole_body is not None:
            held.hold_whole_body(conn, whole_body)
        conn.exchange = held
        conn.pause_reading()
        self._cancel_response_timer()  # the head is here: no retry while it is held
        self._wait_for_filter(outcome)

    def _response_filters_resumed(self, outcome) -> None:
        self._filter_answered()
        held = self._held_response
        self._held_response = None
        conn = held.conn
        if conn is self.conn:
            conn.exchange = self
            conn.resume_reading()  # what comes next arrives after the replay below
        if outcome.__class__ is LocalReply:
            self._resume_safely(self.reply, outcome)
            return
        self._resume_safely(self._send_response_head, held.response, outcome)
        if not self.finished:
            self._resume_safely(held.replay)

    def _tunnel_response_filters(self, phase, headers):
        """on_response for a 101 (WebSocket): answered at once or not at all. The
        upstream may speak the new protocol right after its 101, so the connection is not
        held for a filter that waits: that is a 500 filter_error, logged."""
        outcome = phase.run(self.ctx, headers, _never_resumed)
        cls = outcome.__class__
        if cls is Paused:
            outcome.cancel()
            log.error("a filter waited on the response to a WebSocket upgrade: refused")
            self.reply(error_reply(500, reasons.FILTER_ERROR))
            return None
        if cls is LocalReply:
            self.reply(outcome)
            return None
        return outcome

    def _cached_response_filters(self, phase, answer, headers):
        """on_response for a stored answer; None when the filters answered or wait."""
        outcome = phase.run(self.ctx, headers, self._cached_filters_resumed)
        cls = outcome.__class__
        if cls is Paused:
            self._held_response = answer
            self._wait_for_filter(outcome)
            return None
        if cls is LocalReply:
            self.reply(outcome)
            return None
        return outcome

    def _cached_filters_resumed(self, outcome) -> None:
        self._filter_answered()
        answer = self._held_response
        self._held_response = None
        if outcome.__class__ is LocalReply:
            self._resume_safely(self.reply, outcome)
        else:
            self._resume_safely(self._send_cached, answer, outcome)

    # ================================================================ response body

    def _start_response_pump(self, need) -> None:
        conn = self.conn
        self._response_pump = BodyPump(
            self.route.response_body_phase,
            need,
            self.ctx,
            send=self._send_response_body_filtered,
            end=self._response_body_filtered_end,
            reply=self._response_body_refused,
            too_large=self._response_body_too_large,
            pause=conn.pause_reading,
            resume=conn.resume_reading,
        )
        self._response_pump.open()  # the head filters are done: pieces run as they come

    def _send_response_body_filtered(self, data: bytes) -> None:
        pump = self._response_pump
        head = pump.head
        if head is not None:  # a whole body: its head goes now, with the body's length
            pump.head = None
            self._send_held_head(head, len(data))
        if self._cache is not None and self._cache_tee(data):
            return
        self.ctx.bytes_out += len(data)
        self.downstream.send_body(data)

    def _response_body_filtered_end(self, token) -> None:
        pump = self._response_pump
        if pump.head is not None:  # a whole body that came out empty
            head, pump.head = pump.head, None
            self._send_held_head(head, 0)
        if token is not None:
            conn, clean = token
            self._on_response_end(conn, clean)

    def _send_held_head(self, head, length: int) -> None:
        status, reason, headers, request_id = head
        self.downstream.send_response(status, reason, headers, length, False, request_id)

    def _response_body_refused(self, answer: LocalReply) -> None:
        """A response body filter answered itself: before the head went out, that answer
        replaces the upstream's; after, the response can only be cut off."""
        pump = self._response_pump
        if pump.whole and pump.head is not None:
            self.reply(answer)
            return
        self.ctx.reason = answer.reason
        self.gateway.stats.record_local_reply(answer.reason)
        self._drop_connection()
        self.downstream.abort()
        self._finish()

    def _response_body_too_large(self) -> None:
        self._response_body_refused(error_reply(502, reasons.RESPONSE_BODY_TOO_LARGE))
