"""The exchange's WebSocket steps: a 101 from the upstream turns the exchange into a raw
tunnel (tunnel.py) until either side closes or it idles out.

A slotted base class of ``Exchange``, as cache_step.py and filter_steps.py are.
"""

from __future__ import annotations

import time

from dispa.proxy.balancer.p2c_ewma import observe_latency
from dispa.proxy.events import Response, header_value
from dispa.proxy.http1.writer import response_head
from dispa.proxy.tunnel import Tunnel


class TunnelSteps:
    __slots__ = ()

    def _begin_tunnel(self, response: Response) -> None:
        """101 Switching Protocols: the head goes to the client, then bytes flow both ways."""
        ctx = self.ctx
        ctx.status = 101
        now = self.gateway.now
        observe_latency(ctx.endpoint, now - self._try_started)
        upstream = self.upstream
        upstream.report_status(ctx.endpoint, 101, now)
        self.gateway.stats.record_endpoint(upstream.name, ctx.endpoint.address, False)
        headers = response.headers
        phase = self.route.response_phase
        if phase is not None:
            headers = self._tunnel_response_filters(phase, headers)
            if headers is None:
                return
        head = response_head(
            101,
            response.reason,
            headers,
            content_length=None,
            chunked=False,
            keep_alive=False,
            request_id=ctx.request_id.encode("latin-1"),
            upgrade=header_value(response.headers, b"upgrade") or self.request.upgrade,
        )
        self.response_started = True
        self._release_endpoint()  # a long-lived tunnel must not weigh on least-request
        conn = self.conn
        tunnel = self.tunnel = Tunnel(self, self.downstream, conn)
        conn.tunnel = tunnel
        self.downstream.start_tunnel(tunnel, head)
        self._arm_tunnel_timer()

    def _tunnel_idle(self) -> float:
        timeouts = self.upstream.config.timeouts
        return timeouts.tunnel_idle if timeouts.tunnel_idle is not None else timeouts.idle

    def _arm_tunnel_timer(self) -> None:
        self.deadline = self.gateway.now + self._tunnel_idle()
        self._deadline_kind = "tunnel"

    def _on_tunnel_idle_check(self, now: float) -> None:
        tunnel = self.tunnel
        if tunnel is None or tunnel.closed:
            return
        # The tunnel stamps its own clock per read; the deadline is moved lazily here.
        quiet_for = time.monotonic() - tunnel.last_activity
        idle = self._tunnel_idle()
        if quiet_for < idle:
            self.deadline = now + (idle - quiet_for)
            self._deadline_kind = "tunnel"
            return
        tunnel.close("tunnel_idle_timeout")

    def tunnel_closed(self, reason: str, client_gone: bool) -> None:
        """Both sides are closing: the exchange ends, counted as a 101 like any request."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.exchange = None
        self.response_done = True
        if reason and not self.ctx.reason:
            self.ctx.reason = reason
        self._finish(client_gone=client_gone)
