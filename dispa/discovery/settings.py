"""The configuration of providers: one entry per provider, told apart by ``type``.

Shape (YAML), a list under the integrator's ``discovery.providers`` key::

    - type: file
      name: files                 # pools become "POOL@files"
      path: /etc/dispa/endpoints.yaml   # {pool: [{address, weight?, region?}]}
      interval: 1.0               # seconds between mtime checks
    - type: dns
      name: dns
      server: 127.0.0.1:53        # optional; default: first nameserver of /etc/resolv.conf
      min_interval: 1.0           # re-resolve after the TTL, kept in [min, max]
      max_interval: 300.0
      pools:
        web: {query: web.internal, record: A, port: 8080}      # A / AAAA need a port
        api: {query: _http._tcp.api.internal, record: SRV}     # SRV carries its ports
    - type: etcd
      name: etcd
      endpoints: [http://10.0.0.1:2379]
      prefix: /dispa/discovery    # keys PREFIX/POOL/INSTANCE -> {address, weight, region}
    - type: consul
      name: consul
      address: http://127.0.0.1:8500
      token_file: /etc/dispa/consul-token   # optional
      wait: 60                    # blocking-query wait, seconds
      pools:
        web: {service: web, tag: prod, datacenter: dc1}
    - type: kubernetes
      name: k8s
      kubeconfig: ~/.kube/config  # omit inside a pod: the service account is used
      pools:
        web: {service: web, port: http, namespace: shop}

Every provider also takes ``retry: {initial, maximum}`` for its backoff after failures.
``build_provider`` turns one entry into a running-ready Provider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.provider import FollowingProvider

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
PoolName = Annotated[str, Field(pattern=_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(Strict):
    initial: float = Field(0.5, gt=0)
    maximum: float = Field(30.0, gt=0)


class ProviderBase(Strict):
    name: str = Field(pattern=_NAME)
    retry: Retry = Retry()

    def backoff(self) -> RetryBackoff:
        return RetryBackoff(self.retry.initial, max(self.retry.initial, self.retry.maximum))


class FileSettings(ProviderBase):
    type: Literal["file"]
    path: Path
    interval: float = Field(1.0, gt=0)


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


class DnsSettings(ProviderBase):
    type: Literal["dns"]
    server: str | None = None  # host:port
    timeout: float = Field(2.0, gt=0)
    min_interval: float = Field(1.0, gt=0)
    max_interval: float = Field(300.0, gt=0)
    pools: dict[PoolName, DnsPoolSettings] = Field(min_length=1)


class EtcdSettings(ProviderBase):
    type: Literal["etcd"]
    endpoints: list[str] = Field(min_length=1)
    prefix: str = "/dispa/discovery"
    timeout: float = Field(5.0, gt=0)


class ConsulPoolSettings(Strict):
    service: str = Field(min_length=1)
    tag: str | None = None
    datacenter: str | None = None
    region: str | None = Field(None, pattern=_NAME)


class ConsulSettings(ProviderBase):
    type: Literal["consul"]
    address: str = "http://127.0.0.1:8500"
    token_file: Path | None = None
    wait: float = Field(60.0, ge=1, le=600)  # Consul caps a blocking query at 10 minutes
    pools: dict[PoolName, ConsulPoolSettings] = Field(min_length=1)


class KubernetesPoolSettings(Strict):
    service: str = Field(min_length=1)
    port: str | None = None
    namespace: str | None = None
    region: str | None = Field(None, pattern=_NAME)


class KubernetesSettings(ProviderBase):
    type: Literal["kubernetes"]
    kubeconfig: Path | None = None  # None: in-cluster service account
    context: str | None = None
    watch_timeout: int = Field(300, ge=10)
    pools: dict[PoolName, KubernetesPoolSettings] = Field(min_length=1)


ProviderSettings = Annotated[
    FileSettings | DnsSettings | EtcdSettings | ConsulSettings | KubernetesSettings,
    Field(discriminator="type"),
]
_PROVIDER_LIST = TypeAdapter(list[ProviderSettings])


def parse_providers(raw: object) -> list[ProviderSettings]:
    """Validate a list of provider entries (raises pydantic's ValidationError with paths)."""
    settings = _PROVIDER_LIST.validate_python(raw or [])
    names = [entry.name for entry in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"provider names must be unique: {names}")
    return settings


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return value.strip("[]"), default_port
    return host.strip("[]"), int(port)


def build_provider(settings: ProviderSettings) -> FollowingProvider:
    # Imported here: a gateway that uses no Kubernetes or Consul does not load their code.
    backoff = settings.backoff()
    if isinstance(settings, FileSettings):
        from dispa.discovery.file_provider import FileProvider

        return FileProvider(settings.name, settings.path, settings.interval, backoff)
    if isinstance(settings, DnsSettings):
        from dispa.discovery.dns_provider import DnsPool, DnsProvider

        pools = {
            pool: DnsPool(spec.query, spec.record, spec.port, spec.weight, spec.region)
            for pool, spec in settings.pools.items()
        }
        server = _host_port(settings.server, 53) if settings.server else None
        return DnsProvider(
            settings.name,
            pools,
            server,
            settings.timeout,
            settings.min_interval,
            settings.max_interval,
            backoff=backoff,
        )
    if isinstance(settings, EtcdSettings):
        from dispa.discovery.etcd_provider import EtcdProvider

        return EtcdProvider(
            settings.name, settings.endpoints, settings.prefix, settings.timeout, backoff
        )
    if isinstance(settings, ConsulSettings):
        from dispa.discovery.consul_provider import ConsulPool, ConsulProvider

        token = settings.token_file.read_text().strip() if settings.token_file else None
        pools = {
            pool: ConsulPool(spec.service, spec.tag, spec.datacenter, spec.region)
            for pool, spec in settings.pools.items()
        }
        return ConsulProvider(
            settings.name, pools, settings.address, token, settings.wait, backoff=backoff
        )
    from dispa.discovery.kubernetes_auth import from_kubeconfig, in_cluster
    from dispa.discovery.kubernetes_provider import KubernetesPool, KubernetesProvider

    access = (
        from_kubeconfig(settings.kubeconfig.expanduser(), settings.context)
        if settings.kubeconfig
        else in_cluster()
    )
    pools = {
        pool: KubernetesPool(spec.service, spec.port, spec.namespace, spec.region)
        for pool, spec in settings.pools.items()
    }
    return KubernetesProvider(settings.name, pools, access, settings.watch_timeout, backoff)


def build_providers(raw: object) -> list[FollowingProvider]:
    return [build_provider(entry) for entry in parse_providers(raw)]
