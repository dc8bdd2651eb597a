"""Config models of a core cluster: the node's own file, and the shared gateway config.

A core node's file (``dispa core -c core.yaml``) says who the node is: id, region, Raft
address and peers, data directory, secret, listeners and admin address. What every node
serves alike (upstreams, routes, filters) is the *shared config*, written through the
admin API and replicated with revisions; each node combines it with its own listeners.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dispa.config.acme import Acme
from dispa.config.ai import Ai
from dispa.config.discovery import Discovery
from dispa.config.file_paths import FilePath
from dispa.config.schema import (
    _NAME,
    AccessLog,
    Address,
    Admin,
    CacheSettings,
    FilterConfig,
    FilterTypeConfig,
    Gateway,
    Listener,
    RateLimit,
    Region,
    Route,
    Strict,
    Upstream,
)
from dispa.config.units import Duration, Size

SECRET_ENV = "DISPA_CLUSTER_SECRET"


class SharedConfig(Strict):
    """The part of a gateway config that the cluster replicates (no listeners, no admin)."""

    upstreams: tuple[Upstream, ...] = ()
    routes: tuple[Route, ...] = Field(min_length=1)
    filters: tuple[FilterConfig, ...] = ()
    filter_definitions: dict[str, FilterTypeConfig] = {}
    rate_limits: tuple[RateLimit, ...] = ()
    regions: tuple[Region, ...] = ()
    access_log: AccessLog = AccessLog()
    drain_timeout: Duration = 15.0
    discovery: Discovery = Discovery()
    acme: Acme | None = None  # certificates ordered by the leader, served by every node
    ai: Ai = Ai()  # online learning: every node samples and steers its own traffic


class RaftSettings(Strict):
    address: Address  # host:port this node's Raft listens on
    peers: tuple[Address, ...] = ()  # the other cores' Raft addresses
    # Measured defaults: see docs/operator-guide.md, "Failover timing".
    election_min: Duration = 0.3
    election_max: Duration = 0.6
    heartbeat: Duration = 0.05
    connection_timeout: Duration = 1.5
    # What a peer can make this core hold on the Raft port (see raft_transport.py).
    max_message_size: Size = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        le=1024 * 1024 * 1024,
        description="Largest Raft message accepted from a peer that has proven the cluster "
        "secret (the length prefix is checked before the message is buffered). Before that "
        "proof a message may be 4 KiB at most, whatever this says. Large enough for the "
        "largest config revision: log entries travel whole, snapshots in 64 KiB pieces.",
    )
    auth_timeout: Duration = Field(
        5.0,
        gt=0,
        le=60,
        description="A connection to the Raft port that has not proven the cluster secret "
        "this long after it was accepted is closed (a real core does so within a round trip).",
    )
    max_unauthenticated_connections: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Connections to the Raft port held at once before they prove the secret; "
        "one more closes the oldest of them. Cores' own links, once authenticated, do not "
        "count.",
    )

    @model_validator(mode="after")
    def _timings_fit_together(self) -> RaftSettings:
        # pysyncobj asserts these relations; a bad file must say which field is wrong.
        if not 0 < self.heartbeat * 3 < self.election_min:
            raise ValueError("heartbeat must be above 0 and below a third of election_min")
        if self.election_max <= self.election_min:
            raise ValueError("election_max must be greater than election_min")
        if self.connection_timeout <= self.election_max:
            raise ValueError("connection_timeout must be greater than election_max")
        return self


class NodeSettings(Strict):
    id: str = Field(pattern=_NAME)
    region: str = Field("default", pattern=_NAME)
    data_dir: FilePath
    secret: str | None = None  # or secret_file, or the DISPA_CLUSTER_SECRET environment variable
    secret_file: FilePath | None = None


class StoreSettings(Strict):
    store: Literal["raft", "etcd"] = "raft"
    endpoints: tuple[str, ...] = ()  # etcd client URLs or host:port, for store: etcd
    prefix: str = "/dispa"

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("the etcd prefix must start with /")
        return value.rstrip("/") or "/dispa"

    @model_validator(mode="after")
    def _etcd_needs_endpoints(self) -> StoreSettings:
        if self.store == "etcd" and not self.endpoints:
            raise ValueError("store: etcd needs endpoints, e.g. [http://127.0.0.1:2379]")
        return self


class CoreConfig(Strict):
    node: NodeSettings
    raft: RaftSettings
    cluster: StoreSettings = StoreSettings()
    listeners: tuple[Listener, ...] = Field(min_length=1)
    admin: Admin = Admin()

    def cluster_secret(self) -> str | None:
        """The secret from the file, a secret file, or the environment, in that order."""
        if self.node.secret:
            return self.node.secret
        if self.node.secret_file:
            try:
                with open(self.node.secret_file) as handle:
                    return handle.read().strip() or None
            except OSError:
                return None
        return os.environ.get(SECRET_ENV) or None


def gateway_for_node(node, shared: SharedConfig) -> Gateway:
    """The whole gateway config one node (core or edge) serves: the shared part plus the
    node's own listeners and admin address."""
    return Gateway(
        listeners=node.listeners,
        admin=node.admin,
        upstreams=shared.upstreams,
        routes=shared.routes,
        filters=shared.filters,
        rate_limits=shared.rate_limits,
        regions=shared.regions,
        access_log=shared.access_log,
        drain_timeout=shared.drain_timeout,
        discovery=shared.discovery,
        ai=shared.ai,
        acme=shared.acme,
        # An edge's own cache settings, so its /api/v1/config shows them (cores do not cache).
        cache=getattr(node, "cache", CacheSettings()),
    )


def waiting_gateway(core) -> Gateway:
    """What a node (core or edge) serves before it holds any config: a plain 503."""
    return Gateway.model_validate(
        {
            "listeners": [listener.model_dump() for listener in core.listeners],
            "admin": core.admin.model_dump(),
            "routes": [
                {
                    "name": "no_config_yet",
                    "match": {"host": "*"},
                    "direct_response": {
                        "status": 503,
                        "body": "no gateway config has been applied to this cluster yet\n",
                    },
                }
            ],
            "access_log": {"enabled": False},
        }
    )
