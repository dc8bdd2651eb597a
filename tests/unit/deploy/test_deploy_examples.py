"""The example configs and the compose file in deploy/, validated with Dispa's validators.

Core files are checked as ``dispa core`` reads them, edge files as ``dispa edge`` does,
shared configs as ``dispa apply`` does, gateway files as ``dispa validate`` does. Beyond
each file alone: the files of one deployment must agree with each other (peers, admin
addresses, regions). The compose file is parsed and its references checked; no docker
engine is available here, so it is not started.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dispa.cli import main as dispa_main
from dispa.cluster.admin_api import validate_shared
from dispa.config.cluster import CoreConfig
from dispa.config.edge import EdgeConfig
from dispa.config.errors import ConfigError
from dispa.config.load import load_model_file
from dispa.config.schema import split_address

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "deploy" / "examples"
MULTI_REGION = EXAMPLES / "multi-region"
COMPOSE = REPO / "deploy" / "compose"


def _load_deployment(folder: Path, shared_name: str):
    cores = {p.name: load_model_file(CoreConfig, p) for p in sorted(folder.glob("core-*.yaml"))}
    edges = {p.name: load_model_file(EdgeConfig, p) for p in sorted(folder.glob("edge-*.yaml"))}
    shared = validate_shared(yaml.safe_load((folder / shared_name).read_text()))
    return cores, edges, shared


def _assert_consistent(cores: dict, edges: dict, shared) -> None:
    """What a deployment needs beyond valid files: every core lists exactly the others as
    peers, ids are unique, edges follow every core's admin address, and every core,
    edge and endpoint region is one the shared config places on the map."""
    raft = {name: config.raft.address for name, config in cores.items()}
    assert len(set(raft.values())) == len(cores)
    assert len({config.node.id for config in cores.values()}) == len(cores)
    for name, config in cores.items():
        assert set(config.raft.peers) == set(raft.values()) - {raft[name]}, name
    admins = {config.admin.address for config in cores.values()}
    assert len({config.edge.name for config in edges.values()}) == len(edges)
    for name, config in edges.items():
        assert set(config.cores) == admins, name
    regions = {region.name for region in shared.regions}
    assert {config.node.region for config in cores.values()} <= regions
    assert {config.edge.region for config in edges.values()} <= regions
    endpoint_regions = {
        endpoint.region for upstream in shared.upstreams for endpoint in upstream.endpoints
    }
    assert endpoint_regions == regions, "every region should have endpoints"


def test_multi_region_example_has_three_regions_and_two_pops() -> None:
    cores, edges, shared = _load_deployment(MULTI_REGION, "shared.yaml")
    assert len(cores) == 3 and len(edges) == 2
    assert {config.node.region for config in cores.values()} == {"eu-west", "us-east", "ap-south"}
    _assert_consistent(cores, edges, shared)
    for config in cores.values():
        # Production files take the secret from a file, never inline.
        assert config.node.secret is None and config.node.secret_file
        # The admin address is advertised to the other cores: never a wildcard.
        assert split_address(config.admin.address)[0] != "0.0.0.0"
        assert split_address(config.admin.address)[0] == split_address(config.raft.address)[0]
    assert any(route.cache for route in shared.routes)


def test_a_broken_example_would_be_caught(tmp_path: Path) -> None:
    """The validation above is not vacuous: a wrong field in a copy is reported by path."""
    text = (MULTI_REGION / "core-eu.yaml").read_text()
    broken = tmp_path / "core.yaml"
    broken.write_text(text.replace('peers: ["10.2.0.10:7001"', 'peers: ["10.2.0.10"'))
    with pytest.raises(ConfigError) as caught:
        load_model_file(CoreConfig, broken)
    assert "raft.peers[0]" in caught.value.render()


def test_local_demo_configs_still_validate() -> None:
    cores, edges, shared = _load_deployment(EXAMPLES / "local", "gateway.yaml")
    assert len(cores) == 3 and len(edges) == 2
    _assert_consistent(cores, edges, shared)


def test_the_single_gateway_example_passes_dispa_validate(capsys: pytest.CaptureFixture) -> None:
    assert dispa_main(["validate", "-c", str(EXAMPLES / "gateway.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "ok"


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def test_compose_has_three_cores_two_edges_and_upstreams(compose: dict) -> None:
    services = compose["services"]
    commands = {name: service.get("command", []) for name, service in services.items()}
    cores = sorted(name for name, command in commands.items() if command[:1] == ["core"])
    edges = sorted(name for name, command in commands.items() if command[:1] == ["edge"])
    upstreams = sorted(name for name in services if name.startswith("upstream-"))
    assert cores == ["core-1", "core-2", "core-3"]
    assert edges == ["edge-eu", "edge-us"]
    assert upstreams == ["upstream-ap", "upstream-eu", "upstream-us"]
    for name in services:
        service = services[name]
        assert service["image"] == "dispa:0.1.0"
        build = service["build"]
        context = (COMPOSE / build["context"]).resolve()
        assert context == REPO and (context / build["dockerfile"]).is_file()
    for name in cores:
        environment = services[name]["environment"]
        assert environment["DISPA_CLUSTER_SECRET"].startswith("${DISPA_CLUSTER_SECRET:?")


def _mounted_configs(service: dict) -> dict[str, Path]:
    """Container path -> the file or folder on the host, for bind mounts (relative paths
    are relative to the compose file)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (COMPOSE / source).resolve()
    return mounts


def _host_path(mounts: dict[str, Path], container_path: str) -> Path:
    """Where a path inside the container is on the host, through the bind mounts."""
    for target, source in mounts.items():
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not in any bind mount")


def test_compose_mounts_existing_configs_that_validate(compose: dict) -> None:
    services = compose["services"]
    cores, edges = {}, {}
    declared_volumes = set(compose["volumes"])
    for name, service in services.items():
        command = service.get("command", [])
        mounts = _mounted_configs(service)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in declared_volumes, volume
        for path in mounts.values():
            assert path.exists(), f"{name} mounts {path}, which does not exist"
        if command[:1] in (["core"], ["edge"]):
            config_path = _host_path(mounts, command[command.index("-c") + 1])
            model = CoreConfig if command[0] == "core" else EdgeConfig
            config = load_model_file(model, config_path)
            (cores if command[0] == "core" else edges)[name] = config
            if command[0] == "edge":
                # An edge stops at start when its geo database cannot be read.
                assert _host_path(mounts, config.geo.database).is_file(), name
        if command[:1] == ["apply"]:
            shared_path = _host_path(mounts, command[command.index("-f") + 1])
            shared = validate_shared(yaml.safe_load(shared_path.read_text()))
            admin_host = command[command.index("--admin") + 1].split(":")[0]
            assert admin_host in services
    assert len(cores) == 3 and len(edges) == 2
    _assert_consistent(cores, edges, shared)
    for name, config in cores.items():
        # Hosts are the compose service names, which Docker's DNS resolves.
        assert config.node.id == name
        assert split_address(config.raft.address)[0] == name
        assert services[name]["hostname"] == name
        # No secret in the file: the environment variable (checked above) provides it.
        assert config.node.secret is None and config.node.secret_file is None
    for config in edges.values():
        assert {split_address(address)[0] for address in config.cores} <= set(cores)
    upstream_hosts = {
        split_address(endpoint.address)[0]
        for upstream in shared.upstreams
        for endpoint in upstream.endpoints
    }
    assert upstream_hosts == {name for name in services if name.startswith("upstream-")}


def test_compose_published_ports_match_the_configs(compose: dict) -> None:
    services = compose["services"]
    published = []
    for name, service in services.items():
        for mapping in service.get("ports", []):
            host_ip, host_port, container_port = mapping.split(":")
            assert host_ip == "127.0.0.1", "published on loopback only"
            published.append(int(host_port))
            command = service["command"]
            model = CoreConfig if command[0] == "core" else EdgeConfig
            config = load_model_file(model, _host_path(_mounted_configs(service), command[2]))
            own_ports = {split_address(config.admin.address)[1]} | {
                split_address(listener.address)[1] for listener in config.listeners
            }
            assert int(container_port) in own_ports, (name, mapping)
    assert len(published) == len(set(published)), "a host port published twice"


def test_compose_healthchecks_and_start_order(compose: dict) -> None:
    services = compose["services"]
    for name in ("core-1", "core-2", "core-3"):
        test = services[name]["healthcheck"]["test"]
        assert f"http://{name}:9911/readyz" in test[-1]
    apply = services["apply"]
    assert apply["restart"] == "on-failure"
    assert {name: condition["condition"] for name, condition in apply["depends_on"].items()} == {
        f"core-{n}": "service_healthy" for n in (1, 2, 3)
    }


def test_the_dockerfile_copies_what_exists_and_runs_dispa() -> None:
    """What can be checked without a docker engine: every COPY source exists in the build
    context (the repository), the image runs dispa as a non-root user, and the user id is
    the one the Kubernetes manifests run as."""
    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert copies
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    assert 'ENTRYPOINT ["dispa"]' in dockerfile
    assert "USER 10001:10001" in dockerfile
    manifests = (REPO / "deploy" / "kubernetes" / "dispa.yaml").read_text()
    assert "runAsUser: 10001" in manifests
