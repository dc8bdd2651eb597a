"""The Raft port: pysyncobj's TCP transport on guarded connections, with a deadline and a
cap for connections that have not proven the cluster secret.

``SyncObj(..., transportClass=guarded_transport(limits, stats))`` runs pysyncobj's
``TCPTransport`` (its handshake, node bookkeeping and reconnects) with:

- ``GuardedConnection`` (``raft_connection.py``) for every link, both directions;
- ``GuardedServer``: a real listen backlog, several accepts per event, and a pause rather
  than pysyncobj's unbind-for-good when accept fails (out of descriptors);
- an incoming connection that has not proven the secret within ``auth_timeout`` is closed,
  and at most ``max_unauthenticated`` are held: one more closes the oldest (a real peer
  proves the secret within a round trip; an idle attacker never does);
- a message pysyncobj would send on a link before its handshake is over is not sent (the
  peer would close the link on it);
- each dropped peer counted by reason (``RaftPortStats``, on /metrics) and logged,
  rate-limited and never with the bytes it sent.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import OrderedDict

from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import _getAddrType
from pysyncobj.transport import TCPTransport

from dispa.cluster.raft_connection import GuardedConnection, RaftPortLimits

__all__ = ["GuardedTransport", "RaftPortLimits", "RaftPortStats", "guarded_transport"]

log = logging.getLogger("dispa.raft")

ACCEPTS_PER_EVENT = 16
LISTEN_BACKLOG = 128
# Out of file descriptors (or any accept error): stop accepting for a moment rather than
# spin on a listening socket that stays readable. pysyncobj's own server unbinds, for good.
ACCEPT_PAUSE = 0.1
LOG_INTERVAL = 10.0

DROP_REASONS = (
    "oversized",  # a length prefix beyond the limit for this peer
    "bad_message",  # not a message under the cluster key, or a bad handshake key
    "auth_timeout",  # did not prove the secret in time
    "unauthenticated_limit",  # the oldest of too many unauthenticated connections
)


class RaftPortStats:
    """Counters of the Raft port, written on pysyncobj's thread, read by /metrics."""

    def __init__(self) -> None:
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.unauthenticated = 0
        self._logged_at = dict.fromkeys(DROP_REASONS, float("-inf"))
        self._unlogged = dict.fromkeys(DROP_REASONS, 0)

    def count_drop(self, reason: str, peer: str, detail: str) -> None:
        self.dropped[reason] += 1
        now = time.monotonic()
        if now - self._logged_at[reason] < LOG_INTERVAL:
            self._unlogged[reason] += 1  # a flood costs one log line per interval
            return
        more = self._unlogged[reason]
        self._logged_at[reason] = now
        self._unlogged[reason] = 0
        log.warning(
            "raft port: dropped %s (%s: %s)%s",
            peer,
            reason,
            detail,
            f"; {more} more dropped for this reason since the last report" if more else "",
        )

    def snapshot(self) -> dict:
        return {"dropped": dict(self.dropped), "unauthenticated": self.unauthenticated}


class GuardedServer:
    """The listening socket: pysyncobj's ``TcpServer`` with a real backlog, several
    accepts per event, and a pause (not an unbind) when out of descriptors."""

    def __init__(self, poller, host, port, on_new_connection, make_connection, conf) -> None:
        self._poller = poller
        self._host = host
        self._port = int(port)
        self._on_new_connection = on_new_connection
        self._make_connection = make_connection
        self._send_buffer_size = conf.sendBufferSize
        self._recv_buffer_size = conf.recvBufferSize
        self._socket = None
        self._fileno = None
        self._paused_until = 0.0

    def bind(self) -> None:
        server = socket.socket(_getAddrType(self._host), socket.SOCK_STREAM)
        try:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_size)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer_size)
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.setblocking(False)
            server.bind((self._host, self._port))
            server.listen(LISTEN_BACKLOG)
        except BaseException:
            server.close()
            raise
        self._socket = server
        self._fileno = server.fileno()
        self._subscribe()

    def unbind(self) -> None:
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def resume_if_due(self) -> None:
        """Called every tick: accept again after a pause, or bind again after a failure
        (without the transport ever reporting itself not ready, which stops Raft)."""
        if not self._paused_until or time.monotonic() < self._paused_until:
            return
        self._paused_until = 0.0
        if self._fileno is not None:
            self._subscribe()
            return
        try:
            self.bind()
        except OSError as error:
            log.error("raft port: cannot bind again (%s)", error.strerror or error)
            self._paused_until = time.monotonic() + ACCEPT_PAUSE * 10

    def _subscribe(self) -> None:
        self._poller.subscribe(
            self._fileno, self._on_event, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        )

    def _on_event(self, descriptor, event) -> None:
        if event & POLL_EVENT_TYPE.ERROR:
            log.error("raft port: the listening socket failed; binding it again")
            self.unbind()
            self._paused_until = time.monotonic() + ACCEPT_PAUSE  # see resume_if_due
            return
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, address = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.warning("raft port: cannot accept (%s); pausing", error.strerror or error)
                self._poller.unsubscribe(self._fileno)
                self._paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_size)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer_size)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
            except OSError:  # reset before we got to it
                sock.close()
                continue
            self._on_new_connection(self._make_connection(sock, _format_peer(address)))


def _format_peer(address) -> str:
    try:
        host, port = address[0], address[1]
    except (TypeError, IndexError):
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GuardedTransport(TCPTransport):
    """pysyncobj's TCP transport on guarded connections, with the authentication deadline
    and the cap on unauthenticated connections. Build with ``guarded_transport(...)``."""

    def __init__(self, syncObj, selfNode, otherNodes, *, limits, stats) -> None:
        if not syncObj.encryptor:
            raise ValueError("the guarded Raft transport needs a cluster secret")
        self._limits = limits
        self._stats = stats
        # Incoming connections yet to prove the secret, oldest first, with their deadline.
        self._pending: OrderedDict[GuardedConnection, float] = OrderedDict()
        super().__init__(syncObj, selfNode, otherNodes)

    # -- connections this side opens, and the listening socket -------------------------

    def addNode(self, node) -> None:
        # pysyncobj's addNode, building a guarded connection.
        self._nodes.add(node)
        self._nodeAddrToNode[node.address] = node
        if self._shouldConnect(node):
            conf = self._syncObj.conf
            conn = GuardedConnection(
                self._syncObj._poller,
                self._limits,
                self._dropped,
                timeout=conf.connectionTimeout,
                send_buffer_size=conf.sendBufferSize,
                recv_buffer_size=conf.recvBufferSize,
                keepalive=conf.tcp_keepalive,
            )
            conn.encryptor = self._syncObj.encryptor
            conn.setOnConnectedCallback(lambda: self._onOutgoingConnected(conn))
            conn.setOnMessageReceivedCallback(
                lambda message: self._onMessageReceived(node, message)
            )
            conn.setOnDisconnectedCallback(lambda: self._onDisconnected(conn))
            self._connections[node] = conn

    def _createServer(self) -> None:
        # pysyncobj's _createServer, building a guarded server.
        bind_address = self._syncObj.conf.bindAddress
        self_address = getattr(self._selfNode, "address", None)
        if bind_address is not None:
            host, port = bind_address.rsplit(":", 1)
        elif self_address is not None:
            host, port = self_address.rsplit(":", 1)
            host = "::" if ":" in host else "0.0.0.0"
        else:
            raise RuntimeError("Unable to determine bind address")
        if host not in ("0.0.0.0", "::"):
            host = globalDnsResolver().resolve(host)
        self._server = GuardedServer(
            self._syncObj._poller,
            host,
            port,
            self._onNewIncomingConnection,
            self._make_incoming,
            self._syncObj.conf,
        )

    def _make_incoming(self, sock: socket.socket, peer: str) -> GuardedConnection:
        conf = self._syncObj.conf
        return GuardedConnection(
            self._syncObj._poller,
            self._limits,
            self._dropped,
            sock=sock,
            peer=peer,
            timeout=conf.connectionTimeout,
            send_buffer_size=conf.sendBufferSize,
            recv_buffer_size=conf.recvBufferSize,
            keepalive=conf.tcp_keepalive,
        )

    # -- the deadline and the cap -------------------------------------------------------

    def _onNewIncomingConnection(self, conn: GuardedConnection) -> None:
        while len(self._pending) >= self._limits.max_unauthenticated:
            oldest = next(iter(self._pending))
            self._pending.pop(oldest)
            oldest.drop("unauthenticated_limit", "too many connections yet to authenticate")
        self._pending[conn] = time.monotonic() + self._limits.auth_timeout
        self._stats.unauthenticated = len(self._pending)
        conn.setOnAuthenticatedCallback(self._authenticated)
        super()._onNewIncomingConnection(conn)

    def _authenticated(self, conn: GuardedConnection) -> None:
        self._pending.pop(conn, None)
        self._stats.unauthenticated = len(self._pending)

    def _onDisconnected(self, conn) -> None:
        self._pending.pop(conn, None)
        self._stats.unauthenticated = len(self._pending)
        super()._onDisconnected(conn)

    def _onTick(self) -> None:
        super()._onTick()
        if isinstance(self._server, GuardedServer):
            self._server.resume_if_due()
        # A link this side dialled, still in its handshake, is sent nothing (``send``), so
        # pysyncobj's check on send would never find it dead: check here.
        for conn in list(self._connections.values()):
            if not conn.sendRandKey:
                conn.close_if_idle()
        if not self._pending:
            return
        now = time.monotonic()
        while self._pending:
            conn, deadline = next(iter(self._pending.items()))
            if deadline > now:
                break
            self._pending.pop(conn)
            conn.drop("auth_timeout", f"no proof of the secret within {self._limits.auth_timeout}s")
        self._stats.unauthenticated = len(self._pending)

    def send(self, node, message) -> bool:
        # pysyncobj sends (a vote request, say) on a link it has just dialled, before the
        # peer's connection key came back: the peer cannot accept a message without it,
        # and closed the link. Such a message is not sent; the link finishes its handshake.
        conn = self._connections.get(node)
        if conn is not None and not conn.sendRandKey:
            return False
        return super().send(node, message)

    def _dropped(self, conn: GuardedConnection, reason: str, detail: str) -> None:
        self._stats.count_drop(reason, conn.peer or "a peer", detail)

    def destroy(self) -> None:
        super().destroy()
        self._pending.clear()
        self._stats.unauthenticated = 0


def guarded_transport(limits: RaftPortLimits, stats: RaftPortStats):
    """The ``transportClass`` to give ``SyncObj``: it calls it with (syncObj, selfNode,
    otherNodes)."""

    def build(syncObj, selfNode, otherNodes):
        return GuardedTransport(syncObj, selfNode, otherNodes, limits=limits, stats=stats)

    return build
