"""The exchange's request head toward the upstream: HTTP/1.1 bytes or an HTTP/2 header
block, from the client's request, the route's rewrite, the filters' headers for this try
(on_upstream_request), the gRPC deadline left and the client's verified identity.

A slotted base class of ``Exchange``, as cache_step.py and filter_steps.py are.
"""

from __future__ import annotations

from dispa.proxy.client_identity import with_identity_header
from dispa.proxy.events import header_value
from dispa.proxy.grpc.timeout import with_grpc_timeout
from dispa.proxy.http1.writer import request_head
from dispa.proxy.http2.upstream_headers import request_block

NO_DEADLINE = float("inf")


class RequestHeadSteps:
    __slots__ = ()

    def _build_block(self):
        """The request's HTTP/2 header block (the HTTP/2 twin of ``_build_head``)."""
        request = self.request
        ctx = self.ctx
        target = request.target
        route = self.route
        if route.prefix_rewrite is not None:
            target = route.rewrite_target(target)
        host = request.host_header
        headers = self._upstream_headers
        if headers is None:
            headers = ctx.request_headers
        if self._grpc_deadline != NO_DEADLINE:
            headers = with_grpc_timeout(headers, self._grpc_deadline - self.gateway.now)
        identity_header = self.gateway.identity_headers.get(ctx.listener)
        if identity_header is not None:
            headers = with_identity_header(headers, identity_header, ctx.client_identity)
        return request_block(
            request.method,
            target,
            headers,
            authority=host if host else ctx.endpoint.address.encode(),
            scheme=ctx.scheme,
            client_ip=ctx.client_ip,
            host=host,
            request_id=ctx.request_id.encode(),
            content_length=request.content_length
            if self._request_pump is None
            else self._filtered_request_length(),
        )

    def _build_head(self) -> bytes:
        request = self.request
        ctx = self.ctx
        target = request.target
        route = self.route
        if route.prefix_rewrite is not None:
            target = route.rewrite_target(target)
        host = request.host_header
        headers = self._upstream_headers
        if headers is None:
            headers = ctx.request_headers
        if self._grpc_deadline != NO_DEADLINE:
            headers = with_grpc_timeout(headers, self._grpc_deadline - self.gateway.now)
        if host is None:
            # An HTTP/1.0 client may send no Host; the upstream gets HTTP/1.1, which needs one.
            headers = [(b"host", ctx.endpoint.address.encode()), *headers]
        # Looked up by listener name, not on the connection: a background cache refresh
        # has no connection, and must not pass a client's forged identity on either.
        identity_header = self.gateway.identity_headers.get(ctx.listener)
        if identity_header is not None:
            headers = with_identity_header(headers, identity_header, ctx.client_identity)
        return request_head(
            request.method,
            target,
            headers,
            client_ip=ctx.client_ip,
            scheme=ctx.scheme,
            host=host,
            request_id=ctx.request_id.encode(),
            content_length=request.content_length
            if self._request_pump is None
            else self._filtered_request_length(),
            chunked=self._body_chunked,
            upgrade=None if request.upgrade is None else request_upgrade(request),
        )


def request_upgrade(request) -> bytes | None:
    """The Upgrade value to forward: the client's own, for a WebSocket handshake only."""
    if request.upgrade is None:
        return None
    return header_value(request.headers, b"upgrade") or request.upgrade
