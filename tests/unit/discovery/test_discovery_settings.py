"""Provider settings: the documented shapes validate, mistakes are refused, builds work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from dispa.discovery.consul_provider import ConsulProvider
from dispa.discovery.dns_provider import DnsProvider
from dispa.discovery.etcd_provider import EtcdProvider
from dispa.discovery.file_provider import FileProvider
from dispa.discovery.kubernetes_provider import KubernetesProvider
from dispa.discovery.settings import build_providers, parse_providers


def test_the_documented_example_builds_every_provider(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "t",
                "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://k8s:6443"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
            }
        )
    )
    raw = [
        {"type": "file", "name": "files", "path": str(tmp_path / "eps.yaml")},
        {
            "type": "dns",
            "name": "dns",
            "server": "127.0.0.1:5353",
            "pools": {
                "web": {"query": "web.internal", "port": 8080},
                "api": {"query": "_http._tcp.api.internal", "record": "SRV"},
            },
        },
        {"type": "etcd", "name": "etcd", "endpoints": ["http://127.0.0.1:2379"]},
        {"type": "consul", "name": "consul", "pools": {"web": {"service": "web"}}},
        {
            "type": "kubernetes",
            "name": "k8s",
            "kubeconfig": str(kubeconfig),
            "retry": {"initial": 1, "maximum": 10},
            "pools": {"web": {"service": "web", "port": "http"}},
        },
    ]
    providers = build_providers(raw)
    kinds = [FileProvider, DnsProvider, EtcdProvider, ConsulProvider, KubernetesProvider]
    assert [type(provider) for provider in providers] == kinds
    assert providers[1].server == ("127.0.0.1", 5353)
    assert providers[4].access.server == "https://k8s:6443"
    assert providers[4].backoff.maximum == 10


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"type": "dns", "name": "d", "pools": {"w": {"query": "w.x"}}}], "needs a port"),
        ([{"type": "zookeeper", "name": "z"}], "does not match any of the expected tags"),
        ([{"type": "file", "name": "f", "path": "x", "extra": 1}], "Extra inputs"),
        ([{"type": "file", "name": "bad@name", "path": "x"}], "should match pattern"),
    ],
)
def test_mistakes_are_refused(raw, message) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_providers(raw)


def test_provider_names_are_unique() -> None:
    entry = {"type": "file", "name": "f", "path": "x"}
    with pytest.raises(ValueError, match="unique"):
        parse_providers([entry, entry])
