"""The embedded Raft store: ``ClusterState`` replicated with pysyncobj.

Known pysyncobj traps, and how this file makes them impossible:

- An exception inside a ``@replicated`` method stalls the cluster for good: every
  replicated method here is a one-line call into ``ClusterState``, whose commands are
  total, wrapped once more in ``_total`` so even a bug returns an error result.
- ``journalFile`` without ``fullDumpFile`` loses state after the first log compaction:
  ``RaftStore`` always sets both, in the node's data directory.
- State assigned before ``SyncObj.__init__`` is left out of pysyncobj's own snapshots: the
  state is serialized by our own serializer (msgpack + zstandard), never by pysyncobj, and
  it exists before the tick thread starts so a replayed journal always finds it.
- Method ids come from the sorted names of ``@replicated`` methods: the set of methods is
  fixed here, each with ``ver=``; a changed meaning gets a new version, never a new name
  on some nodes only. Adding a command renumbers the ones sorted after it, so every core
  of a cluster runs the same Dispa version (a rolling upgrade that adds commands is not
  supported before 1.0).
- ``sync=True`` would block the event loop: commands are submitted with a callback from
  pysyncobj's thread, bridged into asyncio (``bridge.py``) with a timeout on our side.
- pysyncobj's TCP connection lets a peer without the secret make a core buffer any
  amount: the Raft port runs on ``raft_transport.py``'s guarded connections instead.
- pysyncobj creates the journal, its ``.meta`` file (anew at every term change) and a
  snapshot received from the leader with the builtin ``open``, so with the umask's mode:
  see ``_pysyncobj_files_private``.
"""

from __future__ import annotations

import functools
import logging
import os
import time

import msgpack
import pysyncobj.journal
import pysyncobj.serializer
import zstandard
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj import pickle as raft_pickle

from dispa.cluster.raft_transport import RaftPortLimits, RaftPortStats, guarded_transport
from dispa.cluster.state import ClusterState
from dispa.private_files import make_private_dir, private_open, private_opener, tighten_files_in

log = logging.getLogger("dispa.raft")

SNAPSHOT_FORMAT = 1
_KEEPALIVE = {"type": "dispa_keepalive"}
JOURNAL_FILE = "raft.journal"  # and pysyncobj's "raft.journal.meta" beside it
SNAPSHOT_FILE = "raft.snapshot"


def _pysyncobj_files_private() -> None:
    """Make the files pysyncobj creates 0600, whatever the umask.

    Its journal and serializer modules create files with the builtin ``open``, at any time
    on pysyncobj's thread (the journal's ``.meta`` file is rewritten at every term change,
    a follower writes the snapshot its leader sends). A umask cannot be set around those
    moments: it belongs to the whole process, and the data plane's threads create files
    too. Both modules look ``open`` up in their own globals before the builtins, so they
    get one that creates private files; reads are unchanged. The data directory is 0700
    as well, so even a file created otherwise is out of others' reach.
    """
    pysyncobj.journal.open = private_open
    pysyncobj.serializer.open = private_open


_pysyncobj_files_private()


def _total(method):
    """A replicated command never raises: a bug becomes an error result on every node alike."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # deterministic: every node hits the same error
            log.exception("replicated command %s failed", method.__name__)
            return {"ok": False, "error": f"internal error: {type(error).__name__}"}

    return wrapper


class RaftTimings:
    """Raft timeouts. See docs/operator-guide.md for the measured trade-off."""

    def __init__(
        self,
        election_min: float = 0.25,
        election_max: float = 0.5,
        heartbeat: float = 0.05,
        connection_timeout: float = 1.5,
    ) -> None:
        self.election_min = election_min
        self.election_max = election_max
        self.heartbeat = heartbeat
        self.connection_timeout = connection_timeout


class RaftStore(SyncObj):
    def __init__(
        self,
        self_address: str,
        partners: list[str],
        data_dir: str,
        secret: str,
        timings: RaftTimings | None = None,
        on_applied=None,
        port_limits: RaftPortLimits | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a cluster secret is required")
        timings = timings or RaftTimings()
        make_private_dir(data_dir)
        tighten_files_in(data_dir)  # left by a version that wrote with the umask's mode
        self.port_stats = RaftPortStats()
        build_transport = guarded_transport(port_limits or RaftPortLimits(), self.port_stats)
        # Exists before the tick thread starts: a journal replayed at start finds it.
        self.state = ClusterState()
        self._on_applied = on_applied
        self._compressor = zstandard.ZstdCompressor(level=3)
        self._decompressor = zstandard.ZstdDecompressor()
        conf = SyncObjConf(
            password=secret,
            # Listen on the configured host only, not on every interface.
            bindAddress=self_address,
            journalFile=os.path.join(data_dir, JOURNAL_FILE),
            fullDumpFile=os.path.join(data_dir, SNAPSHOT_FILE),
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            dynamicMembershipChange=True,
            raftMinTimeout=timings.election_min,
            raftMaxTimeout=timings.election_max,
            appendEntriesPeriod=timings.heartbeat,
            connectionTimeout=timings.connection_timeout,
            connectionRetryTime=0.5,
            # Peers named by DNS (a StatefulSet's pods) change address when rescheduled;
            # pysyncobj's default 600 s cache would keep dialling the old one for minutes.
            dnsCacheTime=5.0,
            dnsFailCacheTime=2.0,
            leaderFallbackTimeout=max(timings.election_max * 4, 2.0),
            # Without batching a command wakes pysyncobj at once instead of waiting for the
            # next tick and heartbeat: commits measured 108 ms -> 8 ms (docs/benchmarks.md).
            appendEntriesUseBatch=False,
            commandsWaitLeader=False,
            logCompactionMinEntries=5000,
            logCompactionMinTime=300,
        )
        self._transport = None
        super().__init__(
            self_address, partners, conf, transportClass=self._remember(build_transport)
        )
        self._keepalive_period = timings.heartbeat
        self._keepalive_sent = 0.0
        self.addOnTickCallback(self._keep_links_alive)

    def _remember(self, build_transport):
        """Keep the transport SyncObj builds: pysyncobj offers no public way to send."""

        def build(syncObj, selfNode, otherNodes):
            self._transport = build_transport(syncObj, selfNode, otherNodes)
            return self._transport

        return build

    def _keep_links_alive(self) -> None:
        """Send a tiny message to every other core each heartbeat.

        pysyncobj closes a connection that has read nothing for ``connectionTimeout`` when
        it next sends on it, dropping that message. Followers never talk to each other, so
        the first vote request after a leader dies was always lost and every failover took
        two election rounds (median 1.1 s). Receivers ignore message types they do not know.

        Only on links whose handshake is over (``GuardedTransport.send`` refuses the others:
        the peer would close a link on a message without its connection key).
        """
        now = time.monotonic()
        if now - self._keepalive_sent < self._keepalive_period:
            return
        self._keepalive_sent = now
        transport = self._transport
        for node in self.otherNodes:
            if not self.isNodeConnected(node):
                continue
            try:
                transport.send(node, _KEEPALIVE)
            except Exception:  # a link that is down is pysyncobj's to reconnect
                log.debug("keepalive to %s not sent", node)

    # ------------------------------------------------------------------ replicated commands

    @replicated(ver=0)
    @_total
    def put_config(self, config, expected_revision, now, author, note):
        return self._applied(self.state.put_config(config, expected_revision, now, author, note))

    @replicated(ver=0)
    @_total
    def rollback_config(self, to_revision, expected_revision, now, author):
        return self._applied(self.state.rollback(to_revision, expected_revision, now, author))

    @replicated(ver=0)
    @_total
    def add_member(self, node_id, raft, admin, region):
        return self.state.add_member(node_id, raft, admin, region)

    @replicated(ver=0)
    @_total
    def remove_member(self, node_id):
        return self.state.remove_member(node_id)

    @replicated(ver=0)
    @_total
    def lease_quota(self, limit_name, key, node, want, limit, window, now):
        return self.state.lease_quota(limit_name, key, node, want, limit, window, now)

    @replicated(ver=0)
    @_total
    def return_quota(self, limit_name, key, node, tokens, window_start):
        return self.state.return_quota(limit_name, key, node, tokens, window_start)

    @replicated(ver=0)
    @_total
    def put_session(self, upstream, session, endpoint, ttl, now):
        return self.state.put_session(upstream, session, endpoint, ttl, now)

    @replicated(ver=0)
    @_total
    def expire_sessions(self, now):
        return self.state.expire_sessions(now)

    @replicated(ver=0)
    @_total
    def restore_state(self, plain, now):
        return self._applied(self.state.restore_backup(plain, now))

    @replicated(ver=0)
    @_total
    def purge_cache(self, urls, tags, now):
        return self._applied(self.state.purge_cache(urls, tags, now))

    @replicated(ver=0)
    @_total
    def report_edge(self, name, region, admin, revision, purge_seq, now):
        return self.state.report_edge(name, region, admin, revision, purge_seq, now)

    @replicated(ver=0)
    @_total
    def acme(self, command, args):
        # One command for every ACME step (acme_state.py): adding steps adds no methods.
        return self._applied(self.state.acme.apply(command, args))

    def _applied(self, result: dict) -> dict:
        if result.get("ok") and self._on_applied is not None:
            try:
                self._on_applied(self.state.revision)
            except Exception:
                log.exception("config-applied hook failed")
        return result

    # ------------------------------------------------------------------ snapshots on disk

    def _write_snapshot(self, file_name: str, raft_data) -> None:
        payload = {
            "format": SNAPSHOT_FORMAT,
            "state": self.state.to_plain(),
            # pysyncobj's own bookkeeping (last entries, members) is opaque to us.
            "raft": raft_pickle.dumps(raft_data),
        }
        packed = msgpack.packb(payload, use_bin_type=True)
        with open(file_name, "wb", opener=private_opener) as handle:
            handle.write(self._compressor.compress(packed))

    def _read_snapshot(self, file_name: str):
        with open(file_name, "rb") as handle:
            packed = self._decompressor.decompress(handle.read())
        payload = msgpack.unpackb(packed, raw=False, strict_map_key=False)
        self.state = ClusterState.from_plain(payload["state"])
        if self._on_applied is not None:
            self._on_applied(self.state.revision)
        return raft_pickle.loads(payload["raft"])
