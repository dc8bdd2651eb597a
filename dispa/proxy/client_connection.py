"""What every client connection does alike, whatever its protocol (HTTP/1.1 or HTTP/2):
learn who the peer is when it connects, and start each request's context from that."""

from __future__ import annotations

from dispa.proxy.client_identity import peer_identity
from dispa.proxy.context import RequestContext


def accept_connection(connection, transport) -> None:
    """Record the peer (address, TLS scheme, verified client certificate) on
    ``connection`` and count it with the gateway's connections."""
    connection.transport = transport
    peer = transport.get_extra_info("peername")
    if peer:
        connection.client_ip, connection.client_port = peer[0], peer[1]
    # On a TLS listener the handshake is over by now: the peer certificate is known.
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        connection.scheme = "https"
        connection.client_identity = peer_identity(ssl_object)
    gateway = connection.gateway
    gateway.connections.add(connection)
    gateway.stats.connections_accepted += 1
    gateway.stats.connections_active += 1


def request_context(connection, request) -> RequestContext:
    """A new request's context: the connection's peer, and a request id."""
    gateway = connection.gateway
    ctx = RequestContext(
        request,
        connection.client_ip,
        connection.client_port,
        connection.listener.name,
        connection.scheme,
        gateway.now,
    )
    ctx.client_identity = connection.client_identity
    ctx.request_id = gateway.next_request_id(request.request_id)
    return ctx
