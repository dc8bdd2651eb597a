"""The exchange's gRPC steps: the call's deadline (grpc-timeout) taken in and armed, the
wait for a response head that may come minutes later, and DEADLINE_EXCEEDED told to the
client as trailers when the call runs out of time.

A base class of ``Exchange`` (its state, ``_grpc`` and ``_grpc_deadline``, lives in the
exchange's slots): the journey calls these steps only for a POST that carries a gRPC
content type, so other requests pay nothing for them.
"""

from __future__ import annotations

from dispa.proxy import local_reply as reasons
from dispa.proxy.grpc.status import DEADLINE_EXCEEDED, status_fields
from dispa.proxy.grpc.timeout import grpc_timeout_header, parse_grpc_timeout
from dispa.proxy.local_reply import error_reply


class GrpcSteps:
    __slots__ = ()

    def _start_grpc(self) -> bool:
        """Note a gRPC request and its deadline; False when it was answered (a malformed
        grpc-timeout is INTERNAL, as grpc-go answers it, rather than silently dropped)."""
        grpc, timeout = grpc_timeout_header(self.request.headers)
        if not grpc:
            return True
        self._grpc = True
        if timeout is not None:
            try:
                self._grpc_deadline = self.ctx.started + parse_grpc_timeout(timeout)
            except ValueError:
                self.reply(error_reply(400, reasons.GRPC_BAD_TIMEOUT))
                return False
        return True

    def body_may_pause(self) -> bool:
        """True for a gRPC call to an HTTP/2 upstream: its client may stay quiet for as long
        as it likes (a bidirectional stream while the server streams), so the listener's
        body timeouts do not apply; the client's deadline and the upstream's idle timeout
        bound the call. Asked only of a body still open, never per request. A request to
        an HTTP/1.1 upstream cannot be gRPC, whatever it claims: the body rules hold."""
        upstream = self.upstream
        return self._grpc and upstream is not None and upstream.config.protocol == "h2"

    def _arm_grpc_wait(self, now: float) -> None:
        """A gRPC call's wait for its response head, which gRPC servers send with the
        first message (a watch's may come minutes later): the route's `timeout` or the
        upstream's `timeouts.grpc_response` when set, else the upstream's idle timeout,
        the bound on its silence before the head as after it. The client's deadline, when
        earlier, fires instead (_arm_deadline)."""
        timeout = self.route.grpc_response_timeout
        if timeout is not None:
            self._arm_deadline(now + timeout, "response")
        else:
            self._last_activity = now
            self._arm_deadline(now + self.upstream.config.timeouts.idle, "idle")

    def _on_grpc_deadline(self) -> None:
        """The client's grpc-timeout passed: the upstream's stream is cancelled (RST_STREAM
        CANCEL) and the client hears DEADLINE_EXCEEDED, as trailers-only before the
        response head, else as the trailers that end the response."""
        if self.finished or self.response_done:
            return
        if not self.response_started:
            self._drop_connection()
            self.reply(error_reply(504, reasons.GRPC_DEADLINE))
            return
        self._end_grpc_stream(reasons.GRPC_DEADLINE)

    def _end_grpc_stream(self, reason: str) -> None:
        """End a gRPC response under way with DEADLINE_EXCEEDED trailers, so the client
        hears why (a reset would read as INTERNAL); the upstream's stream is cancelled."""
        ctx = self.ctx
        ctx.reason = reason
        self.gateway.stats.record_local_reply(reason)
        self._drop_connection()
        self.response_done = True
        downstream = self.downstream
        message = reason.replace("_", " ")
        downstream.send_trailers(status_fields(DEADLINE_EXCEEDED, message))
        downstream.send_end()
        if self.request_done:
            self._finish()
        else:  # a streaming client still sending: its body is read and dropped
            downstream.close_after_exchange()
            downstream.resume_reading("upstream")
            downstream.resume_reading("pending")
