"""``dispa core``: one core node — a Raft member that also runs the data plane.

The node applies every committed config revision to its own gateway and reports the
revision it has applied. Reads of the replicated state are local and so may be a moment
behind the leader; writes go through Raft and are acknowledged only once committed
(pysyncobj forwards a command submitted on a follower to the leader).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from pydantic import ValidationError

from dispa.admin.gateway_view import LocalGatewayView
from dispa.ai.gateway_ai import admin_extras, start_gateway_ai
from dispa.cluster.acme_api import acme_routes
from dispa.cluster.acme_install import ManagedCertificates
from dispa.cluster.acme_manager import AcmeManager
from dispa.cluster.acme_metrics import AcmeCollector
from dispa.cluster.admin_api import cluster_routes
from dispa.cluster.bridge import CommandFailed
from dispa.cluster.discovery_host import CoreDiscoveryHost
from dispa.cluster.quota_client import LeasedQuota
from dispa.cluster.raft_port_metrics import RaftPortCollector
from dispa.cluster.raft_store import RaftTimings
from dispa.cluster.raft_transport import RaftPortLimits
from dispa.cluster.session_client import ReplicatedSessions
from dispa.cluster.store import ClusterStore, RaftClusterStore
from dispa.cluster.watch_api import watch_routes
from dispa.config.cluster import CoreConfig, SharedConfig, gateway_for_node, waiting_gateway
from dispa.config.schema import split_address
from dispa.discovery.leader import LeaderDiscovery
from dispa.discovery.status import DiscoveryCollector, providers_route
from dispa.private_files import make_private_dir
from dispa.proxy.server import Gateway, ListenError

log = logging.getLogger("dispa.core")


class NoSecret(Exception):
    pass


class CoreNode:
    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self.node_id = config.node.id
        self.store: ClusterStore | None = None
        self.gateway: Gateway | None = None
        self.admin = None
        self.applied_revision = 0
        self.applied_at = 0.0
        self.apply_errors: dict[int, str] = {}
        self.stopping = asyncio.Event()
        self._apply_wanted = asyncio.Event()
        # Set (and replaced) whenever the replicated state changes: wakes watch streams.
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.started = time.time()
        # ACME: orders made while this core leads; certificates served by every core.
        self.acme = AcmeManager(self)
        self.acme_tls = ManagedCertificates(config.node.data_dir)

    # ---------------------------------------------------------------- start and stop

    async def run(self) -> int:
        secret = self.config.cluster_secret()
        if not secret:
            raise NoSecret(
                "no cluster secret: set node.secret or node.secret_file in the core config, "
                "or the DISPA_CLUSTER_SECRET environment variable. Without one the Raft port "
                "would accept commands from anyone who can reach it."
            )
        raft = self.config.raft
        make_private_dir(self.config.node.data_dir)  # 0700 whatever the umask, any store
        self.store = self._build_store(secret)
        await self.store.start()
        self.gateway = Gateway()
        self.gateway.region = self.config.node.region  # geo routes rank it first here
        # Global rate limits and sticky sessions go through the cluster.
        self.gateway.quota = LeasedQuota(self.store, self.node_id, self._cluster_size)
        self.gateway.sessions = ReplicatedSessions(self.store)
        await self.gateway.apply(
            waiting_gateway(self.config), source="waiting for config", revision=0
        )
        host, port = split_address(self.config.admin.address)
        from dispa.admin.app import start_admin

        # Discovery providers run on the Raft leader only (LeaderDiscovery follows the role).
        self.discovery = LeaderDiscovery(CoreDiscoveryHost(self))
        self.ai = start_gateway_ai(self.gateway)  # learns off the request path; see docs/ai.md
        ai_routes, ai_collectors = admin_extras(self.ai)
        self.admin = await start_admin(
            LocalGatewayView(self.gateway),
            host,
            port,
            cluster_routes(self)
            + watch_routes(self)
            + acme_routes(self)
            + [providers_route(self.discovery)]
            + ai_routes,
            [
                DiscoveryCollector(self.discovery),
                AcmeCollector(self),
                RaftPortCollector(self.store),
                *ai_collectors,
            ],
            admin_config=self.config.admin,
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        tasks = [
            asyncio.create_task(self._apply_loop()),
            asyncio.create_task(self._register()),
            asyncio.create_task(self.acme.run()),
            asyncio.create_task(self.gateway.sessions.expire_forever(time.time, self._is_leader)),
            asyncio.create_task(self.discovery.run()),
        ]
        self._apply_wanted.set()  # apply whatever the journal already holds
        log.info(
            "core %s (%s) is up: raft %s, admin %s",
            self.node_id,
            self.config.node.region,
            raft.address,
            self.config.admin.address,
        )
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await self.discovery.stop()
        self.ai.stop()
        await self.gateway.drain(self.gateway.snapshot.config.drain_timeout)
        await self.admin.close()
        await self.store.stop()
        log.info("core %s stopped", self.node_id)
        return 0

    def _cluster_size(self) -> int:
        return max(1, len(self.store.state.members), len(self.config.raft.peers) + 1)

    def _is_leader(self) -> bool:
        return self.store.status()["role"] == "leader"

    def _build_store(self, secret: str) -> ClusterStore:
        settings = self.config.cluster
        if settings.store == "etcd":
            from dispa.cluster.etcd_store import EtcdClusterStore

            return EtcdClusterStore(settings.endpoints, settings.prefix, self._on_committed)
        raft = self.config.raft
        timings = RaftTimings(
            raft.election_min, raft.election_max, raft.heartbeat, raft.connection_timeout
        )
        return RaftClusterStore(
            raft.address,
            list(raft.peers),
            self.config.node.data_dir,
            secret,
            timings,
            self._on_committed,
            RaftPortLimits(
                max_message_size=raft.max_message_size,
                auth_timeout=raft.auth_timeout,
                max_unauthenticated=raft.max_unauthenticated_connections,
            ),
        )

    def _on_sighup(self) -> None:
        # The gateway config of a core comes from the cluster (dispa apply); its own file
        # (identity, peers, listeners) is read at start only.
        log.warning(
            "SIGHUP ignored: apply gateway config with 'dispa apply'; restart the "
            "core to change its own file"
        )

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("core %s is stopping", self.node_id)
            self.stopping.set()

    async def _register(self) -> None:
        """Make this node's admin address and region known to the others (retries until done)."""
        me = {
            "raft": self.config.raft.address,
            "admin": self.config.admin.address,
            "region": self.config.node.region,
        }
        while True:
            if self.store.state.members.get(self.node_id) == me:
                return
            try:
                await self.store.add_member(self.node_id, me["raft"], me["admin"], me["region"])
            except CommandFailed as error:
                log.debug("registration not committed yet: %s", error)
            await asyncio.sleep(0.5)

    # ---------------------------------------------------------------- committed config

    def _on_committed(self, revision: int) -> None:
        """Called on pysyncobj's thread after a config revision is applied to the state."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self._loop.call_soon_threadsafe(self._state_changed)

    def _state_changed(self) -> None:
        self._apply_wanted.set()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_changed(self, timeout: float) -> None:
        """Return when the replicated state changes, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))

    async def _apply_loop(self) -> None:
        while True:
            await self._apply_wanted.wait()
            self._apply_wanted.clear()
            state = self.store.state
            revision = state.revision
            shared = state.current_config()
            acme_changed = self.acme_tls.take(state.acme.served())
            if shared is None or (revision == self.applied_revision and not acme_changed):
                continue
            await self._apply(revision, shared)

    async def _apply(self, revision: int, shared: dict) -> None:
        try:
            shared_model = SharedConfig.model_validate(shared)
            gateway_config = self.acme_tls.overlay(
                gateway_for_node(self.config, shared_model), shared_model.acme
            )
            await self.gateway.apply(
                gateway_config, source=f"cluster revision {revision}", revision=revision
            )
        except (ValidationError, ListenError) as error:
            # Validated before it was committed, so this is rare (e.g. a port taken here).
            self.apply_errors[revision] = str(error).splitlines()[0]
            log.error("cannot apply cluster revision %d on %s: %s", revision, self.node_id, error)
            return
        self.applied_revision = revision
        self.applied_at = time.time()
        self.acme_tls.applied_seq = self.acme_tls.served["seq"]

    # ---------------------------------------------------------------- status

    def local_status(self) -> dict:
        store = self.store
        status = store.status()
        return {
            "id": self.node_id,
            "region": self.config.node.region,
            "raft": self.config.raft.address,
            "admin": self.config.admin.address,
            "state": status["role"],
            "leader": status["leader"],
            "term": status["term"],
            "commit_index": status["commit_index"],
            "has_quorum": status["has_quorum"],
            "revision": store.state.revision,
            "applied_revision": self.applied_revision,
            "applied_at": self.applied_at,
            "uptime": round(time.time() - self.started, 1),
        }


async def run_core(config: CoreConfig) -> int:
    from dispa.cluster.etcd_store import EtcdUnreachable

    node = CoreNode(config)
    try:
        return await node.run()
    except (ListenError, EtcdUnreachable) as error:
        log.error("%s", error)
        return 1
    except OSError as error:  # e.g. the admin address is taken
        log.error("cannot start core %s: %s", config.node.id, error.strerror or error)
        return 1
