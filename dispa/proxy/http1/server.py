"""The client side of HTTP/1.1: one Protocol per connection.

It only moves bytes: ``data_received`` feeds the parser and dispatches the events to the
exchange in progress. Requests are answered in order (pipelining): events of a request
that arrives while another is in progress wait in a queue, and reading pauses when the
queue holds too much. Framing of the response (content-length, chunked, close) lives here,
so the exchange stays protocol-agnostic.
"""

from __future__ import annotations

import asyncio
import time

from dispa.proxy import local_reply as reasons
from dispa.proxy.body_pace import paced_deadline
from dispa.proxy.client_connection import accept_connection, request_context
from dispa.proxy.events import Data, EndOfMessage, Request, Trailers
from dispa.proxy.exchange import NO_DEADLINE, Exchange
from dispa.proxy.http1.parser import ProtocolError, RequestParser, UpgradeRequested
from dispa.proxy.http1.writer import LAST_CHUNK, chunk, interim_head, response_head
from dispa.proxy.http2.upstream_headers import accepts_trailers, trailer_section
from dispa.proxy.local_reply import error_reply, reason_phrase
from dispa.proxy.request_target import path_rules_of

# Why reading from a client is paused: the exchange's body is waiting for an upstream
# connection, the upstream is not taking the body fast enough, pipelined requests pile up,
# or body pieces pile up behind a body filter that waits (filters/body_pump.py).
_PAUSE_REASONS = {"pending": 1, "upstream": 2, "queue": 4, "upgrade": 8, "body_filter": 16}
_EXCHANGE_PAUSE_REASONS = (
    _PAUSE_REASONS["pending"] | _PAUSE_REASONS["upstream"] | _PAUSE_REASONS["body_filter"]
)
# Bytes of queued pipelined requests after which the client is paused.
_QUEUE_HIGH_WATER = 256 * 1024
_PROTOCOL_REASONS = {
    400: reasons.MALFORMED,
    413: reasons.BODY_TOO_LARGE,
    431: reasons.HEADER_TOO_LARGE,
    505: reasons.UNSUPPORTED_VERSION,
}


class H1ServerConnection(asyncio.Protocol):
    # Slots, a list for the queue and bits for pause reasons: thousands of idle keep-alive
    # connections each cost little memory.
    __slots__ = (
        "broken",
        "client_identity",
        "client_ip",
        "client_port",
        "closing",
        "deadline",
        "exchange",
        "gateway",
        "keep_alive",
        "last_read",
        "limits",
        "listener",
        "pace_credit",
        "parser",
        "paused_at",
        "paused_for",
        "pending_head",
        "pumping",
        "queue",
        "queued_bytes",
        "request_http10",
        "requests_served",
        "response_chunked",
        "response_head_only",
        "scheme",
        "timer_reason",
        "trailer_section",
        "transport",
        "tunnel",
        "writing_paused",
    )

    def __init__(self, gateway, listener) -> None:
        self.gateway = gateway
        self.listener = listener
        self.limits = listener.limits
        self.transport = None
        self.parser = RequestParser(
            self.limits.max_header_bytes, self.limits.max_body_bytes, path_rules_of(listener.paths)
        )
        self.client_ip = ""
        self.client_port = 0
        self.scheme = "http"
        self.client_identity = None  # a ClientIdentity once a client certificate is verified
        self.exchange: Exchange | None = None
        self.queue: list = []  # events of requests not yet taken by an exchange
        self.queued_bytes = 0
        self.paused_for = 0  # bits of _PAUSE_REASONS while reading is paused
        self.paused_at = 0.0
        self.pace_credit = 0.0  # seconds of this request's body spent paused by us
        self.pending_head: bytes | None = None
        self.keep_alive = True
        self.closing = False
        self.requests_served = 0
        # The client-side timeout in force (header, body or idle), checked by the gateway's
        # ticker: arming one is an assignment, not a timer object per request.
        self.deadline = NO_DEADLINE
        self.timer_reason = ""
        self.response_chunked = False
        self.response_head_only = False
        self.request_http10 = False  # the exchange in progress came as HTTP/1.0
        self.broken = False  # a parse error was answered; ignore further input
        self.pumping = False
        self.last_read = 0.0
        self.tunnel = None  # a Tunnel once a WebSocket upgrade is accepted: bytes go raw
        self.trailer_section: bytes | None = None  # the last chunk with response trailers
        self.writing_paused = False  # the transport's buffer is over its high-water mark

    # ---------------------------------------------------------------- transport callbacks

    def connection_made(self, transport) -> None:
        accept_connection(self, transport)
        self._arm_timer(self.limits.header_timeout, "header")

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_client(data)
            return
        if self.broken:
            return
        if self.exchange is None and not self.queue and not self.paused_for and not self.closing:
            # The common case: one whole request without a body, its head known already
            # (the parser's table), and nothing waiting before it.
            request = self.parser.known_request(data)
            if request is not None:
                self.last_read = self.gateway.now = time.monotonic()
                self._start(request)
                exchange = self.exchange
                if exchange is not None and not self.closing:
                    exchange.on_request_end()
                return
        try:
            events = self.parser.feed(data)
        except ProtocolError as error:
            self._protocol_error(error.status)
            return
        except UpgradeRequested:
            self._protocol_error(501)
            return
        self.last_read = self.gateway.now = time.monotonic()
        body_bytes = self.parser.batch_body_bytes
        if (
            not body_bytes
            and len(events) == 2
            and self.exchange is None
            and not self.queue
            and not self.paused_for
            and not self.closing
            and type(events[0]) is Request
            and type(events[1]) is EndOfMessage
        ):
            # The common case, one whole request without a body and nothing queued: what
            # _pump would do, without the queue.
            self._start(events[0])
            exchange = self.exchange
            if exchange is not None and not self.closing:
                exchange.on_request_end()
        else:
            if body_bytes:
                self.queued_bytes += body_bytes
            if self.queue:
                self.queue += events
            else:
                self.queue = events  # the parser hands over a fresh list: no copying
            self._pump()
        if self.parser.upgrade_pending and self.parser.held_bytes > _QUEUE_HIGH_WATER:
            # Bytes after a WebSocket handshake wait for the upstream's answer; not forever.
            self.pause_reading("upgrade")
        if self.timer_reason == "idle" and self.parser.in_message:
            # A new request has begun arriving: its head must now come in time.
            self._arm_timer(self.limits.header_timeout, "header")

    def eof_received(self) -> bool:
        if self.tunnel is not None:
            self.tunnel.client_left()
            return False
        # A half-closed client may still be waiting for its answer: keep writing.
        if self.exchange is None and not self.queue:
            self._close()
            return False
        self.keep_alive = False
        return True

    def connection_lost(self, exc) -> None:
        self.closing = True
        self._cancel_timer()
        gateway = self.gateway
        gateway.connections.discard(self)
        gateway.stats.connections_active -= 1
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.on_downstream_lost()
        self.queue.clear()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.exchange is not None:
            self.exchange.on_downstream_write_paused()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.exchange is not None:
            self.exchange.on_downstream_write_resumed()

    # ---------------------------------------------------------------- requests in

    def _pump(self) -> None:
        """Hand queued events to the exchange in progress; start the next request when free."""
        if self.pumping:
            return  # an exchange finished inside the loop below, which carries on
        queue = self.queue
        if not queue and not self.paused_for and not self.queued_bytes:
            # Nothing to hand over (an exchange just finished): only the idle timer to arm.
            if self.exchange is None and not self.closing and self.deadline == NO_DEADLINE:
                self.timer_reason = "idle"
                self.deadline = self.gateway.now + self.limits.idle_timeout
            return
        self.pumping = True
        try:
            while queue and not self.closing:
                event = queue[0]
                kind = type(event)
                if kind is Request:
                    if self.exchange is not None:
                        break
                    del queue[0]
                    self._start(event)
                elif kind is Data:
                    del queue[0]
                    self.queued_bytes -= len(event.data)
                    if self.exchange is not None:
                        self.exchange.on_request_data(event.data)
                elif kind is Trailers:
                    del queue[0]
                    if self.exchange is not None:
                        self.exchange.on_request_trailers(event.headers)
                else:
                    del queue[0]
                    if self.exchange is not None:
                        self.exchange.on_request_end()
        finally:
            self.pumping = False
        if self.queued_bytes > _QUEUE_HIGH_WATER:
            self.pause_reading("queue")
        elif self.paused_for & _PAUSE_REASONS["queue"]:
            self.resume_reading("queue")
        if (
            self.exchange is None
            and not self.closing
            and not queue
            and self.deadline == NO_DEADLINE
        ):
            self._arm_timer(self.limits.idle_timeout, "idle")

    def _start(self, request: Request) -> None:
        gateway = self.gateway
        limits = self.limits
        if request.has_body:
            self.timer_reason = "body"
            # The first check comes at the longest pause allowed, or when the body's pace
            # is first judged (body_pace.py), whichever is sooner.
            first_check = limits.body_timeout
            if limits.min_body_rate and limits.body_rate_grace < first_check:
                first_check = limits.body_rate_grace
            self.deadline = gateway.now + first_check
        else:
            self.timer_reason = ""
            self.deadline = NO_DEADLINE
        ctx = request_context(self, request)
        self.pace_credit = 0.0
        self.request_http10 = request.http_version == "1.0"
        self.requests_served += 1
        limit = limits.max_requests_per_connection
        if not request.keep_alive or gateway.draining or (limit and self.requests_served >= limit):
            self.keep_alive = False
        exchange = Exchange(gateway, gateway.snapshot, self, request, ctx)
        self.exchange = exchange
        try:
            exchange.start()
        except Exception:
            gateway.internal_error(exchange)
        if (
            request.has_body
            and not self.request_http10
            and self.exchange is exchange
            and not exchange.response_started
            and request.expect_continue
        ):
            # A client waiting on "Expect: 100-continue" (curl, for bodies over 1 MiB) would
            # stall until its own timeout if it waited for the upstream's 100 (a body held
            # whole, buffer_body_up_to, goes upstream only once it is all here). Being
            # forwarded, the body is welcome: say so now. This is the request's one 100:
            # the upstream's is not sent on (Exchange.on_interim_response).
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # ---------------------------------------------------------------- the exchange calls these

    def send_response(
        self,
        status: int,
        reason: bytes,
        headers,
        content_length,
        no_body: bool,
        request_id: bytes | None = None,
    ):
        self.response_head_only = no_body
        chunked = content_length is None and not no_body
        if chunked and self.request_http10:
            # Fix (integration tests): an HTTP/1.0 client knows no chunked coding, so a
            # body of unknown length goes out raw and the connection close ends it.
            chunked = False
            self.keep_alive = False
        keep_alive = self.keep_alive
        self.response_chunked = chunked
        if self.gateway.draining:
            keep_alive = self.keep_alive = False
        # Held back until the first body bytes (or flush): head and body leave in one write,
        # so a small response costs one syscall and one packet instead of two.
        self.pending_head = response_head(
            status,
            reason,
            headers,
            content_length=content_length,
            chunked=chunked,
            keep_alive=keep_alive,
            request_id=request_id,
        )

    def send_interim(self, status: int, reason: bytes, headers) -> None:
        """An interim (1xx) head, at once. Not to an HTTP/1.0 client (RFC 9110 15.2), and
        not to a client that is not reading: informational, so it is dropped rather than
        buffered without end."""
        if self.request_http10 or self.writing_paused or self.closing:
            return
        self.transport.write(interim_head(status, reason, headers))

    def send_body(self, data: bytes) -> None:
        if self.response_head_only or not data:
            return
        if self.response_chunked:
            data = chunk(data)
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            data = head + data
        self.transport.write(data)

    def send_whole(
        self,
        status: int,
        reason: bytes,
        headers,
        content_length: int,
        no_body: bool,
        body: bytes,
        request_id: bytes,
    ) -> None:
        """A whole response framed by its length, head and body in one write: what
        send_response, send_body and send_end do for it."""
        self.response_head_only = no_body
        self.response_chunked = False
        if self.gateway.draining:
            self.keep_alive = False
        head = response_head(
            status,
            reason,
            headers,
            content_length=content_length,
            chunked=False,
            keep_alive=self.keep_alive,
            request_id=request_id,
        )
        self.transport.write(head if no_body or not body else head + body)

    def send_trailers(self, headers) -> None:
        """Response trailers: in the last chunk, for a client that said ``TE: trailers``
        (RFC 9110 6.5.1); dropped for any other, and for a body with a length."""
        exchange = self.exchange
        if (
            headers
            and self.response_chunked
            and not self.response_head_only
            and exchange is not None
            and accepts_trailers(exchange.request.headers)
        ):
            self.trailer_section = trailer_section(headers)

    def send_end(self) -> None:
        head = self.pending_head
        tail = LAST_CHUNK if self.response_chunked and not self.response_head_only else b""
        if tail and self.trailer_section is not None:
            tail, self.trailer_section = self.trailer_section, None
        if head is not None:
            self.pending_head = None
            self.transport.write(head + tail)
        elif tail:
            self.transport.write(tail)

    def flush(self) -> None:
        """Send a held-back response head now (the upstream sent no body bytes yet)."""
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            if not self.closing:
                self.transport.write(head)

    def send_local_reply(self, answer, head_only: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.gateway.draining:
            self.keep_alive = False
        headers = list(answer.headers)
        exchange = self.exchange
        if exchange is not None and exchange.ctx.request_id:
            # Fix (integration tests): local replies echo the request id as proxied ones do.
            headers.append((b"x-request-id", exchange.ctx.request_id.encode("latin-1")))
        head = response_head(
            answer.status,
            reason_phrase(answer.status),
            headers,
            content_length=len(answer.body),
            chunked=False,
            keep_alive=self.keep_alive,
            proxied=False,
        )
        self.transport.write(head if head_only else head + answer.body)

    def pause_reading(self, reason: str) -> None:
        if not self.paused_for:
            self.paused_at = self.gateway.now
            if self.transport is not None:
                self.transport.pause_reading()
        self.paused_for |= _PAUSE_REASONS[reason]

    def resume_reading(self, reason: str) -> None:
        bit = _PAUSE_REASONS[reason]
        if self.paused_for & bit:
            self.paused_for &= ~bit
            if not self.paused_for:
                # Time the gateway held the client back is not the body's slowness.
                self.pace_credit += time.monotonic() - self.paused_at
                if self.transport is not None and not self.closing:
                    self.transport.resume_reading()

    def close_after_exchange(self) -> None:
        self.keep_alive = False

    def start_tunnel(self, tunnel, head: bytes) -> None:
        """The upstream accepted a WebSocket upgrade: send its 101 head, then relay raw
        bytes; what the client sent after its handshake goes first."""
        self.tunnel = tunnel
        self.keep_alive = False
        self._cancel_timer()
        self.pending_head = None
        self.transport.write(head)
        held = self.parser.take_tunnel_bytes()
        if held:
            tunnel.from_client(held)
        self.resume_reading("upgrade")

    def end_tunnel(self) -> None:
        """Either side of the tunnel ended: close once what is buffered is written."""
        self._close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def exchange_finished(self, exchange, client_gone: bool) -> None:
        if exchange is not self.exchange:
            return
        self.exchange = None
        self.pending_head = None
        if (
            not self.paused_for
            and not self.queue
            and not self.queued_bytes
            and self.keep_alive
            and not client_gone
            and not self.closing
            and not self.parser.upgrade_pending
        ):
            # The common case, nothing queued or paused: only the idle timer to arm (what
            # _pump would end with).
            self.timer_reason = "idle"
            self.deadline = self.gateway.now + self.limits.idle_timeout
            return
        self.deadline = NO_DEADLINE
        self.timer_reason = ""
        paused = self.paused_for != 0
        if paused:
            # What paused reading for the finished exchange no longer holds.
            self.paused_for &= ~_EXCHANGE_PAUSE_REASONS
        if client_gone or self.closing:
            return
        if not self.keep_alive:
            self._close()
            return
        if self.parser.upgrade_pending and exchange.request.upgrade is not None:
            # The upgrade was refused (any answer but 101): back to HTTP/1.1.
            try:
                events = self.parser.resume_after_refused_upgrade()
            except ProtocolError as error:
                self._protocol_error(error.status)
                return
            self.queue += events
            self.queued_bytes += self.parser.batch_body_bytes
            self.resume_reading("upgrade")
        if paused and not self.paused_for:
            self.transport.resume_reading()
        self._pump()

    # ---------------------------------------------------------------- errors, timers, close

    def _protocol_error(self, status: int) -> None:
        self.broken = True
        self.keep_alive = False
        reason = _PROTOCOL_REASONS.get(status, "unsupported_upgrade")
        answer = error_reply(status, reason)
        exchange = self.exchange
        if exchange is not None and not exchange.response_started:
            exchange.reply(answer)  # counts it and ends that exchange; we close after
        elif exchange is None:
            self.gateway.stats.record_local_reply(reason)
            self.send_local_reply(answer, head_only=False)
            self._close()
        else:
            self.abort()

    def _arm_timer(self, seconds: float, reason: str) -> None:
        self.timer_reason = reason
        self.deadline = self.gateway.now + seconds

    def _cancel_timer(self) -> None:
        self.deadline = NO_DEADLINE
        self.timer_reason = ""

    def check_deadlines(self, now: float) -> None:
        """Called by the gateway's ticker: fire whichever deadline has passed."""
        if self.deadline <= now:
            self._on_timer()
        exchange = self.exchange
        if exchange is not None and exchange.deadline <= now:
            exchange.check_deadline(now)

    def _on_timer(self) -> None:
        reason = self.timer_reason
        self.deadline = NO_DEADLINE
        self.timer_reason = ""
        if self.closing:
            return
        if reason == "idle":
            self._close()
        elif reason == "header" and self.exchange is None:
            if self.parser.in_message:
                self.gateway.stats.record_local_reply(reasons.CLIENT_TIMEOUT)
                self.keep_alive = False
                self.send_local_reply(error_reply(408, reasons.CLIENT_TIMEOUT), head_only=False)
            self._close()
        elif reason == "body" and self.exchange is not None and not self.exchange.request_done:
            self._check_body_pace(self.exchange)

    def _check_body_pace(self, exchange) -> None:
        """A body still arriving: answer 408 if it paused too long or came too slowly
        (body_pace.py), else look again when one of the two could next be true. While
        reading is paused on the gateway's side, the pace is not the client's doing."""
        limits = self.limits
        now = time.monotonic()
        quiet_for = now - self.last_read
        started = exchange.ctx.started + self.pace_credit
        paced_until = paced_deadline(started, exchange.ctx.bytes_in, limits)
        if self.paused_for:
            paced_until = now + limits.body_timeout
        if quiet_for < limits.body_timeout and now < paced_until:
            # Body bytes kept coming: wait for the rest of the allowed pause or pace.
            wait = min(limits.body_timeout - quiet_for, paced_until - now)
            self._arm_timer(wait, "body")
            return
        reason = (
            reasons.CLIENT_TIMEOUT if quiet_for >= limits.body_timeout else reasons.BODY_TOO_SLOW
        )
        if not exchange.response_started:
            exchange.reply(error_reply(408, reason))
        else:
            self.gateway.stats.record_local_reply(reason)
            self.abort()

    def close_if_idle(self) -> None:
        """Graceful drain: close now if between requests, else after the current one. A
        WebSocket tunnel has no end to wait for: the drain's deadline aborts it."""
        self.keep_alive = False
        if self.exchange is None and not self.queue:
            self._close()

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            self._cancel_timer()
            if self.transport is not None:
                self.transport.close()
