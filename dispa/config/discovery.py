"""The ``discovery`` section: providers of upstream endpoints, as pure config data.

Shape (YAML)::

    discovery:
      throttle: 1s                  # at most one new config per second from discovery
      providers:
        - {type: file, name: files, path: /etc/dispa/endpoints.yaml}
        - type: dns
          name: dns
          pools:
            web: {query: web.internal, record: A, port: 8080}
    upstreams:
      - name: web
        discovery: web@dns          # endpoints from pool "web" of provider "dns"

Pools are named ``pool@provider``. The models live here, apart from the providers
(``dispa/discovery/``), because the data plane reads the config and must not import
discovery; ``dispa.discovery.settings.build_provider`` turns an entry into a provider.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from dispa.config.file_paths import FilePath
from dispa.config.units import Duration

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# "pool@provider": both halves are plain names.
_POOL_AT_PROVIDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9_.-]*$")
PoolName = Annotated[str, Field(pattern=_NAME)]


def _check_pool_reference(value: str) -> str:
    if not _POOL_AT_PROVIDER.match(value):
        raise ValueError(
            f"'{value}' does not name a discovered pool; write POOL@PROVIDER, like web@dns"
        )
    return value


PoolReference = Annotated[str, AfterValidator(_check_pool_reference)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderRetry(Strict):
    initial: Duration = 0.5
    maximum: Duration = 30.0


class ProviderBase(Strict):
    name: str = Field(pattern=_NAME)
    retry: ProviderRetry = ProviderRetry()


class FileProviderSettings(ProviderBase):
    type: Literal["file"]
    path: FilePath = Field(min_length=1)
    interval: Duration = 1.0


class DnsPoolSettings(Strict):
    query: str = Field(min_length=1)
    record: Literal["A", "AAAA", "SRV"] = "A"
    port: int | None = Field(None, ge=1, le=65535)
    weight: int = Field(1, ge=1, le=1000)
    region: str | None = Field(None, pattern=_NAME)

    @model_validator(mode="after")
    def _port_where_needed(self) -> DnsPoolSettings:
        if self.record != "SRV" and self.port is None:
            raise ValueError(f"an {self.record} query needs a port (SRV records carry theirs)")
        return self


class DnsProviderSettings(ProviderBase):
    type: Literal["dns"]
    server: str | None = None  # host:port
    timeout: Duration = 2.0
    min_interval: Duration = 1.0
    max_interval: Duration = 300.0
    pools: dict[PoolName, DnsPoolSettings] = Field(min_length=1)


class EtcdProviderSettings(ProviderBase):
    type: Literal["etcd"]
    endpoints: tuple[str, ...] = Field(min_length=1)
    prefix: str = "/dispa/discovery"
    timeout: Duration = 5.0


class ConsulPoolSettings(Strict):
    service: str = Field(min_length=1)
    tag: str | None = None
    datacenter: str | None = None
    region: str | None = Field(None, pattern=_NAME)


class ConsulProviderSettings(ProviderBase):
    type: Literal["consul"]
    address: str = "http://127.0.0.1:8500"
    token_file: FilePath | None = None
    wait: int = Field(60, ge=1, le=600)  # Consul caps a blocking query at 10 minutes
    pools: dict[PoolName, ConsulPoolSettings] = Field(min_length=1)


class KubernetesPoolSettings(Strict):
    service: str = Field(min_length=1)
    port: str | None = None
    namespace: str | None = None
    region: str | None = Field(None, pattern=_NAME)


class KubernetesProviderSettings(ProviderBase):
    type: Literal["kubernetes"]
    kubeconfig: FilePath | None = None  # None: in-cluster service account
    context: str | None = None
    watch_timeout: int = Field(300, ge=10)
    pools: dict[PoolName, KubernetesPoolSettings] = Field(min_length=1)


ProviderSettings = Annotated[
    FileProviderSettings
    | DnsProviderSettings
    | EtcdProviderSettings
    | ConsulProviderSettings
    | KubernetesProviderSettings,
    Field(discriminator="type"),
]

# Providers whose pools are declared in the config; file and etcd pools come from the source.
DECLARED_POOLS = (DnsProviderSettings, ConsulProviderSettings, KubernetesProviderSettings)


class Discovery(Strict):
    providers: tuple[ProviderSettings, ...] = ()
    throttle: Duration = 1.0  # at most one new config from discovery per this many seconds


def discovery_problems(discovery: Discovery, upstreams) -> list[str]:
    """Provider names that repeat, and upstreams whose ``discovery`` names a provider (or a
    declared pool) that is not there; each problem with its field path."""
    problems = []
    first: dict[str, int] = {}
    for index, provider in enumerate(discovery.providers):
        if provider.name in first:
            problems.append(
                f"discovery.providers[{index}].name: '{provider.name}' is already used by "
                f"discovery.providers[{first[provider.name]}]"
            )
        first.setdefault(provider.name, index)
    by_name = {provider.name: provider for provider in discovery.providers}
    for index, upstream in enumerate(upstreams):
        if upstream.discovery is None:
            continue
        pool, _, provider_name = upstream.discovery.partition("@")
        provider = by_name.get(provider_name)
        where = f"upstreams[{index}].discovery"
        if provider is None:
            known = ", ".join(sorted(by_name)) or "none are declared under discovery.providers"
            problems.append(f"{where}: unknown provider '{provider_name}'; known: {known}")
        elif isinstance(provider, DECLARED_POOLS) and pool not in provider.pools:
            pools = ", ".join(sorted(provider.pools))
            problems.append(
                f"{where}: provider '{provider_name}' has no pool '{pool}'; its pools: {pools}"
            )
    return problems
