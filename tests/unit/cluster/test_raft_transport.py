"""The guarded Raft port (raft_connection.py, raft_transport.py): pysyncobj's wire format,
with limits for peers that have not proven the cluster secret.

Connection tests drive real sockets (a socketpair) with pysyncobj's own poller in the test
thread; transport tests run real ``RaftStore`` cores in this process on free ports.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import time

import pytest
from pysyncobj.encryptor import getEncryptor
from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import CONNECTION_STATE

from dispa.cluster.raft_connection import (
    HANDSHAKE_MESSAGE_LIMIT,
    GuardedConnection,
    RaftPortLimits,
)
from dispa.cluster.raft_store import RaftStore, RaftTimings
from dispa.cluster.raft_transport import RaftPortStats

SECRET = "transport-test-secret"
ENCRYPTOR = getEncryptor(SECRET)  # derived once: PBKDF2 takes a moment
KEY = b"k" * 32


# ---------------------------------------------------------------- one connection


class Pair:
    """Two guarded connections on a socketpair, or one and a raw attacker socket."""

    def __init__(self, limits: RaftPortLimits, recv_buffer_size: int = 2**16) -> None:
        self.poller = createPoller("auto")
        self.drops: list[tuple[str, str]] = []
        self.received: list = []
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        self.server = GuardedConnection(
            self.poller,
            limits,
            lambda conn, reason, detail: self.drops.append((reason, detail)),
            sock=ours,
            peer="test-peer",
            timeout=60.0,
            recv_buffer_size=recv_buffer_size,
        )
        self.server.encryptor = ENCRYPTOR
        self.server.setOnMessageReceivedCallback(self.received.append)
        self.raw = theirs
        self.client: GuardedConnection | None = None

    def with_client(self, limits: RaftPortLimits) -> GuardedConnection:
        self.client = GuardedConnection(
            self.poller, limits, lambda *drop: None, sock=self.raw, timeout=60.0
        )
        self.client.encryptor = ENCRYPTOR
        return self.client

    def pump(self, until, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "timed out pumping the poller"
            self.poller.poll(0.01)

    def closed(self) -> bool:
        return self.server.state == CONNECTION_STATE.DISCONNECTED

    def close(self) -> None:
        self.server.disconnect()
        if self.client is not None:
            self.client.disconnect()
        self.raw.close()


@pytest.fixture
def pair():
    made: list[Pair] = []

    def make(limits: RaftPortLimits | None = None, **options) -> Pair:
        made.append(Pair(limits or RaftPortLimits(), **options))
        return made[-1]

    yield make
    for one in made:
        one.close()


def token(message, at: int = 1) -> bytes:
    """A frame exactly as pysyncobj sends it, under the cluster key."""
    import zlib

    from pysyncobj import pickle as raft_pickle

    data = ENCRYPTOR.encrypt_at_time(zlib.compress(raft_pickle.dumps(message), 3), at)
    return struct.pack("i", len(data)) + data


def test_a_length_above_the_handshake_limit_is_refused_before_it_is_buffered(pair):
    one = pair()
    one.raw.sendall(struct.pack("i", 0x7FFFFFFF) + b"x" * 1000)
    one.pump(one.closed)
    assert one.drops == [("oversized", "a 2147483647-byte message before authentication")]


@pytest.mark.parametrize("length", [0, -1, -(2**31)])
def test_an_empty_or_negative_length_is_refused(pair, length):
    one = pair()
    one.raw.sendall(struct.pack("i", length) + b"x" * 8)
    one.pump(one.closed)
    assert [reason for reason, _ in one.drops] == ["bad_message"]


def test_a_message_at_the_handshake_limit_is_read_and_judged_by_its_content(pair):
    one = pair()
    one.raw.sendall(struct.pack("i", HANDSHAKE_MESSAGE_LIMIT) + b"x" * HANDSHAKE_MESSAGE_LIMIT)
    one.pump(one.closed)
    assert [reason for reason, _ in one.drops] == ["bad_message"]


def test_a_token_under_another_key_is_refused(pair):
    from cryptography.fernet import Fernet

    one = pair()
    forged = Fernet(Fernet.generate_key()).encrypt(b"hello")
    one.raw.sendall(struct.pack("i", len(forged)) + forged)
    one.pump(one.closed)
    assert one.drops[0][0] == "bad_message"
    assert not one.received


def test_a_replayed_handshake_message_does_not_authenticate(pair):
    # A first message under the right key (as an eavesdropper could replay one) is handed
    # over, but proves nothing: the limit stays the handshake's.
    one = pair()
    one.raw.sendall(token(os.urandom(32)))
    one.pump(lambda: one.received)
    assert not one.server.authenticated
    one.raw.sendall(struct.pack("i", HANDSHAKE_MESSAGE_LIMIT + 1))
    one.pump(one.closed)
    assert one.drops[0][0] == "oversized"


def authenticate(one: Pair, limits: RaftPortLimits) -> GuardedConnection:
    """The state pysyncobj's handshake leaves: each side knows the other's random key."""
    client = one.with_client(limits)
    one.server.recvRandKey = KEY
    client.sendRandKey = KEY
    client.send("hello")
    one.pump(lambda: one.received)
    assert one.received == ["hello"]
    assert one.server.authenticated
    return client


def test_a_peer_with_the_secret_may_send_large_messages_and_no_larger(pair):
    limits = RaftPortLimits(max_message_size=4 * 1024 * 1024)
    one = pair(limits)
    client = authenticate(one, limits)
    large = os.urandom(2 * 1024 * 1024)  # incompressible: about 2.7 MiB on the wire
    client.send(large)
    one.pump(lambda: len(one.received) == 2)
    assert one.received[1] == large
    assert not one.drops
    client.send(os.urandom(4 * 1024 * 1024))  # above the limit once encoded
    one.pump(one.closed)
    assert one.drops[0][0] == "oversized"
    assert "after authentication" in one.drops[0][1]


def test_a_large_message_is_buffered_in_linear_time(pair):
    # About 21 MiB on the wire, read 4 KiB at a time: a buffer copied on every read
    # (pysyncobj's own connection) moves about 58 GB for it, far beyond the bound.
    # Appended in place, reading and decoding it takes a second or two, so the bound
    # leaves a loaded machine a wide margin. The frame is built before the clock starts.
    limits = RaftPortLimits(max_message_size=64 * 1024 * 1024)
    one = pair(limits, recv_buffer_size=4096)
    authenticate(one, limits)
    large = os.urandom(16 * 1024 * 1024)
    frame = memoryview(token((KEY, large), at=int(time.monotonic())))
    sent = 0
    started = time.monotonic()
    while len(one.received) < 2:
        assert time.monotonic() - started < 8, f"{sent} of {len(frame)} bytes in 8 s"
        if sent < len(frame):
            with contextlib.suppress(BlockingIOError):
                sent += one.raw.send(frame[sent : sent + 65536])
        one.poller.poll(0)
    assert one.received[1] == large


def test_a_message_with_the_wrong_connection_key_is_refused(pair):
    one = pair()
    client = one.with_client(RaftPortLimits())
    one.server.recvRandKey = KEY
    client.sendRandKey = b"z" * 32
    client.send("hello")
    one.pump(one.closed)
    assert one.drops == [("bad_message", "the wrong connection key")]
    assert not one.received


def test_drops_are_counted_and_logged_at_most_once_per_interval(caplog):
    stats = RaftPortStats()
    with caplog.at_level("WARNING", logger="dispa.raft"):
        for index in range(50):
            stats.count_drop("oversized", f"10.0.0.{index}:1", "a 5000-byte message")
    assert stats.snapshot()["dropped"]["oversized"] == 50
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1, lines
    assert "10.0.0.0:1" in lines[0] and "oversized" in lines[0]


# ---------------------------------------------------------------- real cores in-process


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Cores:
    def __init__(self, tmp_path, limits: RaftPortLimits) -> None:
        self.tmp_path = tmp_path
        self.limits = limits
        self.addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
        self.stores: dict[int, RaftStore] = {}

    def start(self, index: int) -> RaftStore:
        address = self.addresses[index]
        store = RaftStore(
            address,
            [other for other in self.addresses if other != address],
            str(self.tmp_path / f"core-{index}"),
            SECRET,
            RaftTimings(),
            port_limits=self.limits,
        )
        self.stores[index] = store
        return store

    def leader(self, timeout: float = 15.0) -> RaftStore:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for store in self.stores.values():
                if store._isLeader() and store.getStatus()["has_quorum"]:
                    return store
            time.sleep(0.05)
        raise AssertionError("no leader with quorum")

    def stop(self) -> None:
        for store in self.stores.values():
            store.destroy()
        for store in self.stores.values():
            deadline = time.monotonic() + 5
            while store.tick_thread_alive() and time.monotonic() < deadline:
                time.sleep(0.02)


@pytest.fixture
def cores(tmp_path):
    made: list[Cores] = []

    def make(limits: RaftPortLimits | None = None) -> Cores:
        made.append(Cores(tmp_path / f"cluster-{len(made)}", limits or RaftPortLimits()))
        return made[-1]

    yield make
    for one in made:
        one.stop()


def big_config(size: int) -> dict:
    return {"routes": [], "padding": os.urandom(size // 2).hex()}


def wait_revision(store: RaftStore, revision: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while store.state.revision < revision:
        assert time.monotonic() < deadline, f"revision {revision} never reached"
        time.sleep(0.05)


def test_cores_replicate_a_large_command_and_a_snapshot_through_the_guarded_port(
    cores, monkeypatch
):
    previous = os.umask(0o022)
    try:
        cluster = cores()
        cluster.start(0)
        cluster.start(1)
        leader = cluster.leader()
        # 3 MiB of hex: a log entry far above the handshake limit and pysyncobj's 64 KiB
        # batches, sent as one message.
        result = leader.put_config(big_config(3 * 1024 * 1024), None, 1.0, "t", "", sync=True)
        assert result["ok"], result
        for store in cluster.stores.values():
            wait_revision(store, result["revision"])
            store.forceLogCompaction()
        snapshot = os.path.join(cluster.tmp_path, "core-0", "raft.snapshot")
        deadline = time.monotonic() + 20
        while not os.path.exists(snapshot):
            assert time.monotonic() < deadline, "no snapshot written"
            time.sleep(0.05)
        # A core that joins after the compaction is sent the snapshot, in 64 KiB chunks.
        late = cluster.start(2)
        wait_revision(late, result["revision"], timeout=30)
        received = os.path.join(cluster.tmp_path, "core-2", "raft.snapshot")
        deadline = time.monotonic() + 10
        while not os.path.exists(received):
            assert time.monotonic() < deadline, "the late core kept no snapshot"
            time.sleep(0.05)
        assert stat.S_IMODE(os.stat(received).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(received)).st_mode) == 0o700
        for store in cluster.stores.values():
            assert store.port_stats.snapshot()["dropped"] == dict.fromkeys(
                ("oversized", "bad_message", "auth_timeout", "unauthenticated_limit"), 0
            )
    finally:
        os.umask(previous)


def test_unauthenticated_connections_beyond_the_cap_close_the_oldest(cores):
    cluster = cores(RaftPortLimits(auth_timeout=1.0, max_unauthenticated=4))
    for index in range(3):
        cluster.start(index)
    leader = cluster.leader()
    host, port = leader.selfNode.address.rsplit(":", 1)
    idle = []
    try:
        for _ in range(6):
            idle.append(socket.create_connection((host, int(port)), timeout=5))
            time.sleep(0.1)  # accepted in this order
        time.sleep(0.3)

        def closed(sock: socket.socket) -> bool:
            sock.settimeout(0.05)
            try:
                return sock.recv(1) == b""
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True

        assert [closed(sock) for sock in idle] == [True, True, False, False, False, False]
        assert leader.port_stats.snapshot()["unauthenticated"] == 4
        time.sleep(1.5)  # past the deadline: the rest go too
        assert all(closed(sock) for sock in idle[2:])
        snapshot = leader.port_stats.snapshot()
        assert snapshot["dropped"]["unauthenticated_limit"] == 2
        assert snapshot["dropped"]["auth_timeout"] == 4
        assert snapshot["unauthenticated"] == 0
        # The cores' own links were never touched.
        result = leader.put_config({"routes": []}, None, 2.0, "t", "", sync=True)
        assert result["ok"], result
    finally:
        for sock in idle:
            sock.close()


def test_the_wire_format_is_pysyncobjs_own(cores, monkeypatch):
    # One core on pysyncobj's plain TCP transport, two on the guarded one: they connect
    # both ways (the higher address dials), prove the secret and replicate.
    from pysyncobj.transport import TCPTransport

    import dispa.cluster.raft_store as raft_store

    cluster = cores()
    cluster.start(0)
    with monkeypatch.context() as patch:
        patch.setattr(raft_store, "guarded_transport", lambda limits, stats: TCPTransport)
        cluster.start(1)
    cluster.start(2)
    leader = cluster.leader()
    result = leader.put_config(big_config(256 * 1024), None, 1.0, "t", "", sync=True)
    assert result["ok"], result
    for store in cluster.stores.values():
        wait_revision(store, result["revision"])

    def links_up() -> bool:  # every core linked to both others
        for store in cluster.stores.values():
            status = store.getStatus()
            links = [status[key] for key in status if key.startswith("partner_node_status_")]
            if links != [2, 2]:
                return False
        return True

    deadline = time.monotonic() + 10
    while not links_up():
        assert time.monotonic() < deadline, "the cores never all linked to each other"
        time.sleep(0.05)
    for index in (0, 2):
        assert not any(cluster.stores[index].port_stats.snapshot()["dropped"].values())


def test_the_listening_socket_pauses_when_out_of_descriptors_and_accepts_again():
    # pysyncobj's own server unbinds for good on an accept error: out of descriptors
    # once, a core would never accept a peer again.
    import resource

    from pysyncobj import SyncObjConf

    from dispa.cluster.raft_transport import ACCEPT_PAUSE, GuardedServer

    poller = createPoller("auto")
    accepted: list[GuardedConnection] = []

    def make_connection(sock, peer):
        return GuardedConnection(poller, RaftPortLimits(), lambda *drop: None, sock=sock)

    server = GuardedServer(
        poller, "127.0.0.1", free_ports(1)[0], accepted.append, make_connection, SyncObjConf()
    )
    server.bind()
    port = server._socket.getsockname()[1]
    clients: list[socket.socket] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(8)]
        # Room for a few more descriptors only: the other peers wait in the backlog.
        used = {int(name) for name in os.listdir("/proc/self/fd")}
        free = [number for number in range(len(used) + 4) if number not in used]
        resource.setrlimit(resource.RLIMIT_NOFILE, (free[2] + 1, hard))
        for _ in range(20):
            poller.poll(0.01)
        assert 0 < len(accepted) < 8
        assert server._paused_until > 0, "accept failed without a pause"
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        time.sleep(ACCEPT_PAUSE + 0.05)
        server.resume_if_due()
        deadline = time.monotonic() + 5
        while len(accepted) < 8:
            assert time.monotonic() < deadline, f"{len(accepted)} of 8 accepted after the pause"
            poller.poll(0.01)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for client in clients:
            client.close()
        for conn in accepted:
            conn.disconnect()
        server.unbind()


def test_a_dialled_link_that_never_completes_its_handshake_is_redialled(tmp_path):
    # A "peer" that accepts and then says nothing. pysyncobj notices a dead link only when
    # it sends on it, and nothing is sent on a link still in its handshake: without the
    # transport's own check, each core would hold its first connection to it forever.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent.settimeout(0.2)
    silent_address = f"127.0.0.1:{silent.getsockname()[1]}"
    # Cores dial the peers whose address sorts below theirs: 127.0.0.2 sorts above.
    real = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
            real.append(f"127.0.0.2:{probe.getsockname()[1]}")
    stores = []
    accepted: list[socket.socket] = []
    try:
        for index, address in enumerate(real):
            others = [silent_address] + [other for other in real if other != address]
            stores.append(RaftStore(address, others, str(tmp_path / str(index)), SECRET))
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                accepted.append(silent.accept()[0])
        # Two cores, each redialling after connection_timeout (1.5 s) of silence.
        assert len(accepted) >= 4, f"{len(accepted)} connections in 6 s"
    finally:
        for store in stores:
            store.destroy_synchronous()
        for sock in accepted:
            sock.close()
        silent.close()
