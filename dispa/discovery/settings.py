"""Providers built from their config entries: one entry per provider, told apart by ``type``.

The entry models are in ``dispa/config/discovery.py`` (the config must not import the
providers). Shape (YAML), a list under the config's ``discovery.providers``::

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

from pydantic import TypeAdapter

from dispa.config.discovery import (
    ConsulProviderSettings,
    DnsProviderSettings,
    EtcdProviderSettings,
    FileProviderSettings,
    ProviderSettings,
)
from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.provider import FollowingProvider

_PROVIDER_LIST = TypeAdapter(list[ProviderSettings])


def parse_providers(raw: object) -> list[ProviderSettings]:
    """Validate a list of provider entries (raises pydantic's ValidationError with paths)."""
    settings = _PROVIDER_LIST.validate_python(raw or [])
    names = [entry.name for entry in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"provider names must be unique: {names}")
    return settings


def _backoff(settings: ProviderSettings) -> RetryBackoff:
    retry = settings.retry
    return RetryBackoff(retry.initial, max(retry.initial, retry.maximum))


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return value.strip("[]"), default_port
    return host.strip("[]"), int(port)


def build_provider(settings: ProviderSettings) -> FollowingProvider:
    # Imported here: a gateway that uses no Kubernetes or Consul does not load their code.
    backoff = _backoff(settings)
    if isinstance(settings, FileProviderSettings):
        from dispa.discovery.file_provider import FileProvider

        return FileProvider(settings.name, settings.path, settings.interval, backoff)
    if isinstance(settings, DnsProviderSettings):
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
    if isinstance(settings, EtcdProviderSettings):
        from dispa.discovery.etcd_provider import EtcdProvider

        return EtcdProvider(
            settings.name, list(settings.endpoints), settings.prefix, settings.timeout, backoff
        )
    if isinstance(settings, ConsulProviderSettings):
        from dispa.discovery.consul_provider import ConsulPool, ConsulProvider

        token = Path(settings.token_file).read_text().strip() if settings.token_file else None
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
        from_kubeconfig(Path(settings.kubeconfig).expanduser(), settings.context)
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
