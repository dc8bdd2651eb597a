"""One connection of the Raft port: pysyncobj's wire format, with a size limit checked
from the length prefix before a message is buffered, and linear buffers.

pysyncobj's own ``TcpConnection`` buffers a whole message before the secret can be
checked, accepts any length prefix, and grows its buffers by copying them on every read
(quadratic): one connection sending a 2 GiB length prefix and 71 MiB took a leader from
70 to 207 MiB and the cluster lost its leader for 40 s. Its read path is private
(name-mangled) and cannot be changed by a subclass cleanly, so ``GuardedConnection``
replaces the class, with the same interface (``raft_transport.py`` builds it). The wire
format is pysyncobj's, byte for byte: a 4-byte native signed length, then a Fernet token
of the zlib-compressed pickle, with pysyncobj's random-key handshake.

- The length prefix is checked as soon as its 4 bytes are in: at most
  ``HANDSHAKE_MESSAGE_LIMIT`` until the peer has proven the secret (handshake messages are
  about 200 bytes), ``RaftPortLimits.max_message_size`` after.
- Buffers are bytearrays, appended to and consumed from the front: linear in the bytes.
- Output waiting for the socket is flushed when the socket can take it (pysyncobj's waits
  for its next send, a heartbeat later).

"Proven the secret" means a message arrived that decrypts with the cluster key *and*
carries the random key this side chose for this connection, so a replayed handshake
captured on the network does not count.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import time
import zlib
from dataclasses import dataclass

from pysyncobj import pickle as raft_pickle
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE, _getAddrType, set_keepalive

log = logging.getLogger("dispa.raft")

# pysyncobj's frame header: ``struct.pack('i', len(data))``, native order and size.
_LENGTH = struct.Struct("i")
# The handshake's messages are a Fernet token of 32 random bytes, or of one node address,
# (about 200 bytes); a few KiB leaves room for long host names.
HANDSHAKE_MESSAGE_LIMIT = 4096
# Reads per poll event: the poller is level-triggered, so what is left is read on the next
# round, after the other connections and the Raft timers had their turn.
READS_PER_EVENT = 16
_ALL_EVENTS = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR


@dataclass(frozen=True)
class RaftPortLimits:
    """What a peer can make the Raft port hold (``raft`` section of a core's file)."""

    max_message_size: int = 64 * 1024 * 1024
    auth_timeout: float = 5.0
    max_unauthenticated: int = 64


class _Invalid(Exception):
    pass


class GuardedConnection:
    """One Raft connection: pysyncobj's ``TcpConnection`` interface and wire format, with
    a size limit checked from the length prefix and linear buffers."""

    def __init__(
        self,
        poller,
        limits: RaftPortLimits,
        on_drop,
        *,
        sock: socket.socket | None = None,
        peer: str = "",
        timeout: float = 10.0,
        send_buffer_size: int = 2**13,
        recv_buffer_size: int = 2**13,
        keepalive=None,
    ) -> None:
        # Read and written by pysyncobj's transport, as on its own connection class.
        self.sendRandKey = None
        self.recvRandKey = None
        self.recvLastTimestamp = 0
        self.encryptor = None
        self.authenticated = False
        self.peer = peer
        self._poller = poller
        self._limits = limits
        self._on_drop = on_drop
        self._on_authenticated = None
        self._timeout = timeout
        self._send_buffer_size = send_buffer_size
        self._recv_buffer_size = recv_buffer_size
        self._keepalive = keepalive
        self._read_buffer = bytearray()
        self._write_buffer = bytearray()
        self._last_read = time.monotonic()
        self._on_message = None
        self._on_connected = None
        self._on_disconnected = None
        self._socket = sock
        self._writing = True  # subscribed to WRITE events (to see a connect complete)
        if sock is not None:
            self._fileno = sock.fileno()
            self._state = CONNECTION_STATE.CONNECTED
            self._set_keepalive()
            self._poller.subscribe(self._fileno, self._on_event, _ALL_EVENTS)
        else:
            self._fileno = None
            self._state = CONNECTION_STATE.DISCONNECTED

    # ------------------------------------------------------------ pysyncobj's interface

    @property
    def state(self):
        return self._state

    def fileno(self):
        return self._fileno

    def setOnConnectedCallback(self, callback) -> None:
        self._on_connected = callback

    def setOnMessageReceivedCallback(self, callback) -> None:
        self._on_message = callback

    def setOnDisconnectedCallback(self, callback) -> None:
        self._on_disconnected = callback

    def setOnAuthenticatedCallback(self, callback) -> None:
        self._on_authenticated = callback

    def getSendBufferSize(self) -> int:
        return len(self._write_buffer)

    def connect(self, host, port) -> bool:
        if host is None:
            return False
        self._state = CONNECTION_STATE.DISCONNECTED
        self._fileno = None
        self.peer = f"{host}:{port}"
        self.authenticated = False
        self._socket = socket.socket(_getAddrType(host), socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_size)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer_size)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._set_keepalive()
        self._socket.setblocking(False)
        self._read_buffer = bytearray()
        self._write_buffer = bytearray()
        self._last_read = time.monotonic()
        try:
            self._socket.connect((host, port))
        except OSError as error:
            if error.errno not in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                return False
        self._fileno = self._socket.fileno()
        self._state = CONNECTION_STATE.CONNECTING
        self._poller.subscribe(self._fileno, self._on_event, _ALL_EVENTS)
        self._writing = True
        return True

    def send(self, message) -> None:
        if self.sendRandKey:
            message = (self.sendRandKey, message)
        data = zlib.compress(raft_pickle.dumps(message), 3)
        if self.encryptor:
            data = self.encryptor.encrypt_at_time(data, int(time.monotonic()))
        if len(data) > self._limits.max_message_size:
            # The peer will drop the connection: say why here, where it can be fixed.
            log.error(
                "raft port: sending a %d-byte message to %s, above raft.max_message_size "
                "(%d): the peer will refuse it",
                len(data),
                self.peer or "a peer",
                self._limits.max_message_size,
            )
        self._write_buffer += _LENGTH.pack(len(data))
        self._write_buffer += data
        self._try_send()

    def disconnect(self) -> None:
        was_open = self._state != CONNECTION_STATE.DISCONNECTED
        notify = was_open and self._on_disconnected is not None
        self.sendRandKey = None
        self.recvRandKey = None
        self.recvLastTimestamp = 0
        self.authenticated = False
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        self._write_buffer = bytearray()
        self._read_buffer = bytearray()
        self._state = CONNECTION_STATE.DISCONNECTED
        if notify:
            self._on_disconnected()

    # ------------------------------------------------------------ limits

    def drop(self, reason: str, detail: str) -> None:
        """Close a connection that broke a rule, counted and logged by the transport."""
        if self._state == CONNECTION_STATE.DISCONNECTED:
            return
        self._on_drop(self, reason, detail)
        self.disconnect()

    def _message_limit(self) -> int:
        if self.authenticated:
            return self._limits.max_message_size
        return HANDSHAKE_MESSAGE_LIMIT

    # ------------------------------------------------------------ poller events

    def _on_event(self, descriptor, event) -> None:
        if descriptor != self._fileno:
            self._poller.unsubscribe(descriptor)
            return
        if event & POLL_EVENT_TYPE.ERROR:
            self.disconnect()
            return
        self.close_if_idle()
        if self._state == CONNECTION_STATE.DISCONNECTED:
            return
        if self._state == CONNECTION_STATE.CONNECTING:
            if self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.disconnect()
                return
            if self._on_connected is not None:
                self._on_connected()
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return
            self._state = CONNECTION_STATE.CONNECTED
            self._last_read = time.monotonic()
            self._watch_writes()
            return
        if event & POLL_EVENT_TYPE.WRITE:
            self._try_send()
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return
        if event & POLL_EVENT_TYPE.READ:
            self._read()

    def close_if_idle(self) -> None:
        """pysyncobj's rule: a connection that read nothing for ``timeout`` is dead."""
        if (
            self._state != CONNECTION_STATE.DISCONNECTED
            and time.monotonic() - self._last_read > self._timeout
        ):
            self.disconnect()

    def _try_send(self) -> None:
        self.close_if_idle()
        while self._state != CONNECTION_STATE.DISCONNECTED and self._write_buffer:
            try:
                sent = self._socket.send(self._write_buffer)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.disconnect()
                return
            if sent <= 0:
                break
            del self._write_buffer[:sent]  # from the front of a bytearray: no copy
        self._watch_writes()

    def _watch_writes(self) -> None:
        """Be woken when the socket can take more, while output waits. (pysyncobj's own
        connection waits for its next send, a heartbeat later, so a snapshot or a large
        entry crossed at one socket buffer per heartbeat.)"""
        if self._state != CONNECTION_STATE.CONNECTED:
            return
        wanted = bool(self._write_buffer)
        if wanted != self._writing:
            mask = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
            if wanted:
                mask |= POLL_EVENT_TYPE.WRITE
            self._poller.subscribe(self._fileno, self._on_event, mask)
            self._writing = wanted

    def _read(self) -> None:
        for _ in range(READS_PER_EVENT):
            try:
                chunk = self._socket.recv(self._recv_buffer_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.disconnect()
                return
            if not chunk:
                self.disconnect()
                return
            self._last_read = time.monotonic()
            self._read_buffer += chunk
            if not self._deliver() or len(chunk) < self._recv_buffer_size:
                return

    def _deliver(self) -> bool:
        """Hand over every whole message buffered; False once the connection is closed.
        The head message's length is checked as soon as its 4 bytes are in, before the
        rest of it is kept."""
        buffer = self._read_buffer
        while len(buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer)
            if length <= 0:
                self.drop("bad_message", f"a length prefix of {length}")
                return False
            if length > self._message_limit():
                phase = "after" if self.authenticated else "before"
                self.drop("oversized", f"a {length}-byte message {phase} authentication")
                return False
            end = _LENGTH.size + length
            if len(buffer) < end:
                return True
            data = bytes(buffer[_LENGTH.size : end])
            del buffer[:end]
            try:
                message = self._decode(data)
            except _Invalid as error:
                self.drop("bad_message", str(error))
                return False
            if self._on_message is not None:
                self._on_message(message)
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return False
        return True

    def _decode(self, data: bytes):
        """pysyncobj's checks, in its order: a Fernet token under the cluster key with a
        timestamp that never goes back, then the random key of this connection. The first
        message that carries that key proves the peer holds the secret."""
        proven = False
        try:
            if self.encryptor:
                timestamp = self.encryptor.extract_timestamp(data)
                if timestamp < self.recvLastTimestamp:
                    raise _Invalid("a message older than the previous one")
                self.recvLastTimestamp = timestamp
                data = self.encryptor.decrypt(data)
            message = raft_pickle.loads(zlib.decompress(data))
            if self.recvRandKey:
                rand_key, message = message
                if rand_key != self.recvRandKey:
                    raise _Invalid("the wrong connection key")
                proven = True
        except _Invalid:
            raise
        except Exception as error:  # anything a forged or broken message can raise
            reason = f"not a message under the cluster key ({type(error).__name__})"
            raise _Invalid(reason) from None
        if proven and not self.authenticated:
            self.authenticated = True
            if self._on_authenticated is not None:
                self._on_authenticated(self)
        return message

    def _set_keepalive(self) -> None:
        if self._socket is not None and self._keepalive is not None:
            set_keepalive(self._socket, *self._keepalive)
