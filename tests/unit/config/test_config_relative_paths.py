"""Relative file paths in a config file are read beside the file (config/file_paths.py);
configs sent as text keep them (stored ones) or refuse them (the admin API)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from dispa.cluster.admin_api import validate_shared
from dispa.config.cluster import CoreConfig, SharedConfig
from dispa.config.edge import EdgeConfig
from dispa.config.errors import ConfigError
from dispa.config.file_paths import TEXT_CONTEXT, FilePath, resolve_file_path
from dispa.config.load import load_file, load_model_file, load_text
from dispa.config.schema import Gateway
from tests.tls_certs import TestCA

REPO = Path(__file__).resolve().parents[3]
LOCAL_EXAMPLES = REPO / "deploy" / "examples" / "local"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A config folder with certificates in certs/: a CA, a server and a client pair."""
    folder = tmp_path / "conf"
    ca = TestCA()
    ca.write(folder / "certs")
    ca.issue("gateway").write(folder / "certs", "server")
    ca.issue("client", client=True).write(folder / "certs", "client")
    return folder


def write(folder: Path, name: str, config: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


TLS_LISTENER = {
    "name": "public",
    "address": "127.0.0.1:8443",
    "tls": {
        "certificates": [{"cert": "certs/server.pem", "key": "certs/server.key"}],
        "client_auth": {"mode": "optional", "ca": "certs/ca.pem"},
    },
}


def test_every_file_of_a_gateway_file_is_found_beside_it(conf: Path) -> None:
    path = write(
        conf,
        "gateway.yaml",
        {
            "listeners": [TLS_LISTENER],
            "upstreams": [
                {
                    "name": "app",
                    "endpoints": [{"address": "127.0.0.1:9000"}],
                    "tls": {
                        "ca": "certs/ca.pem",
                        "client_cert": "./certs/client.pem",
                        "client_key": "certs/../certs/client.key",
                    },
                },
                {"name": "found", "discovery": "web@files"},
            ],
            "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
            "access_log": {"path": "logs/access.log"},
            "cache": {"disk_dir": "cache"},
            "discovery": {
                "providers": [
                    {"type": "file", "name": "files", "path": "endpoints.yaml"},
                    {
                        "type": "consul",
                        "name": "consul",
                        "token_file": "secrets/consul.token",
                        "pools": {"web": {"service": "web"}},
                    },
                    {
                        "type": "kubernetes",
                        "name": "k8s",
                        "kubeconfig": "kube/config",
                        "pools": {"web": {"service": "web"}},
                    },
                ]
            },
        },
    )
    gateway = load_file(path)
    listener = gateway.listeners[0].tls
    assert listener.certificates[0].cert == str(conf / "certs/server.pem")
    assert listener.certificates[0].key == str(conf / "certs/server.key")
    assert listener.client_auth.ca == str(conf / "certs/ca.pem")
    tls = gateway.upstreams[0].tls
    assert tls.ca == str(conf / "certs/ca.pem")
    assert tls.client_cert == f"{conf}/./certs/client.pem"  # joined, not rewritten
    assert tls.client_key == f"{conf}/certs/../certs/client.key"
    assert gateway.access_log.path == str(conf / "logs/access.log")
    assert gateway.cache.disk_dir == str(conf / "cache")
    files, consul, kubernetes = gateway.discovery.providers
    assert files.path == str(conf / "endpoints.yaml")
    assert consul.token_file == str(conf / "secrets/consul.token")
    assert kubernetes.kubeconfig == str(conf / "kube/config")


def test_a_file_named_from_another_folder_is_found_all_the_same(
    conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "listeners": [TLS_LISTENER],
        "upstreams": [{"name": "app", "endpoints": [{"address": "127.0.0.1:9000"}]}],
        "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
    }
    write(conf, "gateway.yaml", config)
    elsewhere = conf.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    gateway = load_file("../conf/gateway.yaml")  # named relative to the working directory
    assert gateway.listeners[0].tls.certificates[0].cert == str(conf / "certs/server.pem")


def test_absolute_paths_standard_output_and_tilde(conf: Path) -> None:
    absolute = str(conf / "certs" / "server.pem")
    path = write(
        conf,
        "gateway.yaml",
        {
            "listeners": [
                {
                    "name": "public",
                    "address": "127.0.0.1:8443",
                    "tls": {"certificates": [{"cert": absolute, "key": "certs/server.key"}]},
                }
            ],
            "upstreams": [{"name": "app", "endpoints": [{"address": "127.0.0.1:9000"}]}],
            "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
            "access_log": {"path": "-"},
            "cache": {"disk_dir": "~/cache"},
        },
    )
    gateway = load_file(path)
    assert gateway.listeners[0].tls.certificates[0].cert == absolute
    assert gateway.access_log.path == "-"  # standard output, not a file named "-"
    assert gateway.cache.disk_dir == str(conf / "~/cache")  # "~" is not expanded


def test_core_and_edge_files_resolve_their_data_dirs_secrets_and_databases(conf: Path) -> None:
    core = write(
        conf,
        "core.yaml",
        {
            "node": {"id": "c1", "data_dir": "data/core", "secret_file": "cluster.secret"},
            "raft": {"address": "127.0.0.1:7001", "peers": []},
            "listeners": [TLS_LISTENER],
        },
    )
    config = load_model_file(CoreConfig, core)
    assert config.node.data_dir == str(conf / "data/core")
    assert config.node.secret_file == str(conf / "cluster.secret")
    assert config.listeners[0].tls.certificates[0].key == str(conf / "certs/server.key")

    edge = write(
        conf,
        "edge.yaml",
        {
            "edge": {"name": "e1", "data_dir": "data/edge"},
            "cores": ["127.0.0.1:9911"],
            "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
            "cache": {"disk_dir": "/var/cache/dispa"},
            "geo": {"database": "../geo/City.mmdb"},
        },
    )
    config = load_model_file(EdgeConfig, edge)
    assert config.edge.data_dir == str(conf / "data/edge")
    assert config.cache.disk_dir == "/var/cache/dispa"
    assert config.geo.database == f"{conf}/../geo/City.mmdb"


def test_a_config_given_as_text_keeps_its_paths_as_written() -> None:
    """Replayed from the cluster's history or an edge's persisted copy: as before, so a
    stored config never turns invalid."""
    gateway = load_text(
        "listeners: [{name: public, address: '127.0.0.1:8080'}]\n"
        "upstreams: [{name: app, endpoints: [{address: '127.0.0.1:9000'}]}]\n"
        "routes: [{match: {path_prefix: /}, upstream: app}]\n"
        "access_log: {path: logs/access.log}\n"
    )
    assert gateway.access_log.path == "logs/access.log"
    shared = SharedConfig.model_validate(
        {
            "routes": [{"match": {"path_prefix": "/"}, "direct_response": {"status": 204}}],
            "access_log": {"path": "logs/access.log"},
        }
    )
    assert shared.access_log.path == "logs/access.log"


def test_the_admin_api_refuses_relative_paths_naming_each_field(conf: Path) -> None:
    shared = {
        "upstreams": [
            {
                "name": "app",
                "endpoints": [{"address": "127.0.0.1:9000"}],
                "tls": {"ca": "certs/ca.pem"},
            }
        ],
        "routes": [{"match": {"path_prefix": "/"}, "upstream": "app"}],
        "access_log": {"path": "logs/access.log"},
    }
    with pytest.raises(ConfigError) as refused:
        validate_shared(shared, TEXT_CONTEXT)
    problems = refused.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("upstreams[0].tls.ca: 'certs/ca.pem' is a relative path")
    assert problems[1].startswith("access_log.path: 'logs/access.log' is a relative path")
    assert "absolute path" in problems[0]
    # Absolute paths (and standard output) are fine.
    absolute = str(conf / "certs" / "ca.pem")
    shared["upstreams"][0]["tls"]["ca"] = absolute
    shared["access_log"]["path"] = "-"
    assert validate_shared(shared, TEXT_CONTEXT).upstreams[0].tls.ca == absolute


def test_the_local_example_edges_find_their_geo_database_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for example in sorted(LOCAL_EXAMPLES.glob("edge-*.yaml")):
        config = load_model_file(EdgeConfig, example)
        assert Path(config.geo.database).is_file(), (example.name, config.geo.database)


# ---------------------------------------------------------------- every file field


# Fields whose names look like a file's but hold something else.
NOT_FILES = {
    ("HealthCheck", "path"): "the URL path probed",
    ("Redirect", "path"): "a URL path",
    ("Match", "path_prefix"): "a URL path",
    ("Match", "path_exact"): "a URL path",
    ("Match", "path_regex"): "a URL path pattern",
    ("Paths", "merge_slashes"): "a URL path setting",
    ("HashPolicy", "key"): "what the hash is taken of",
    ("LocalRateLimitFilter", "key"): "what the limit counts by",
    ("RateLimit", "key"): "what the limit counts by",
    ("Acme", "directory"): "the ACME directory URL",
    ("StoreSettings", "prefix"): "an etcd key prefix",
    ("EtcdProviderSettings", "prefix"): "an etcd key prefix",
}
FILE_LIKE = re.compile(r"path|file|dir|database|cert|key|ca$|^ca|bundle|kubeconfig")


def _models(root: type[BaseModel], seen: set) -> None:
    if root in seen:
        return
    seen.add(root)
    for field in root.model_fields.values():
        for inner in _flatten(field.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                _models(inner, seen)


def _flatten(annotation) -> list:
    found = [annotation]
    for argument in typing.get_args(annotation):
        found += _flatten(argument)
    return found


def _is_text(annotation) -> bool:
    return any(inner is str for inner in _flatten(annotation))


def _is_file_path(field) -> bool:
    validators = [m for m in field.metadata if getattr(m, "func", None) is resolve_file_path]
    nested = [
        m
        for inner in _flatten(field.annotation)
        for m in getattr(inner, "__metadata__", ())
        if getattr(m, "func", None) is resolve_file_path
    ]
    return bool(validators or nested)


def unmarked_file_fields(roots) -> tuple[list, list]:
    """(fields that look like files but are not FilePath, FilePath fields) of the models
    reachable from ``roots``."""
    models: set = set()
    for root in roots:
        _models(root, models)
    missing, file_paths = [], []
    for model in models:
        for name, field in model.model_fields.items():
            if _is_file_path(field):
                file_paths.append((model.__name__, name))
            elif (
                _is_text(field.annotation)
                and FILE_LIKE.search(name)
                and (model.__name__, name) not in NOT_FILES
            ):
                missing.append((model.__name__, name))
    return missing, file_paths


def test_every_field_that_names_a_file_is_a_file_path() -> None:
    """A new field for a file must be a FilePath, or files beside the config are missed."""
    missing, file_paths = unmarked_file_fields((Gateway, CoreConfig, EdgeConfig, SharedConfig))
    assert missing == [], f"name files? make them FilePath, or list them in NOT_FILES: {missing}"
    # The walk reaches the models (16 file fields when this was written).
    assert len(file_paths) >= 16, sorted(file_paths)


def test_the_check_above_catches_a_plain_text_file_field() -> None:
    class Inner(BaseModel):
        rules_file: str | None = None

    class Outer(BaseModel):
        inner: tuple[Inner, ...] = ()
        database: FilePath = "x"

    assert unmarked_file_fields((Outer,)) == ([("Inner", "rules_file")], [("Outer", "database")])
