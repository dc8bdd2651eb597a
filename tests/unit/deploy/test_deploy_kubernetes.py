"""The Kubernetes manifests and the Helm chart in deploy/, checked without a cluster.

No Kubernetes cluster and no helm binary are available here. The chart is rendered by
``chart_renderer`` (the subset of Helm's template language the chart uses); the plain
manifests in deploy/kubernetes/ must be exactly what it renders. Every document is then
checked for what Kubernetes would refuse or silently get wrong: kinds and required
fields, selectors that match their pods, names that refer to objects that exist, ports
and paths that agree with the config files, and the config files themselves are
validated with Dispa's own validators, as ``dispa core``, ``dispa edge`` and
``dispa apply`` would. What is not checked here: that the API server accepts every field
(no OpenAPI schema validation), and that the pods actually start.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from chart_renderer import (
    CHART,
    PLAIN_DAEMONSET,
    PLAIN_MANIFESTS,
    PLAIN_RELEASE,
    PLAIN_SECRET,
    Renderer,
    TemplateError,
    chart_documents,
    parse,
    plain_daemonset_text,
    plain_manifests_text,
    plain_secret_text,
    render_chart,
)

from dispa.cluster.admin_api import validate_shared
from dispa.config.cluster import CoreConfig
from dispa.config.edge import EdgeConfig
from dispa.config.load import build_model, parse_text
from dispa.config.schema import split_address

SAMPLE_EDGE_POD = "dispa-edge-7c9f8d6b5-x2k8q"


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _one(documents: list[dict], kind: str, name: str | None = None) -> dict:
    found = [
        doc
        for doc in documents
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _mounts(workload: dict) -> dict[str, dict]:
    """Mount path -> the volume mounted there (for volume claim templates: the template)."""
    spec = workload["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"claim": claim}
    mounts = {}
    for mount in _container(workload)["volumeMounts"]:
        assert mount["name"] in volumes, f"mount of unknown volume {mount['name']}"
        mounts[mount["mountPath"]] = volumes[mount["name"]]
    return mounts


def _ports(workload: dict) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in _container(workload)["ports"]}


# ---------------------------------------------------------------- the plain manifests


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    """dispa.yaml and the Secret it uses (secret.yaml), as applied together."""
    return _documents(PLAIN_MANIFESTS) + _documents(PLAIN_SECRET)


def test_the_plain_manifests_are_the_rendered_chart() -> None:
    assert PLAIN_MANIFESTS.read_text() == plain_manifests_text(), (
        "deploy/kubernetes/dispa.yaml is out of date: "
        "run python tests/unit/deploy/chart_renderer.py"
    )
    assert PLAIN_DAEMONSET.read_text() == plain_daemonset_text()
    assert PLAIN_SECRET.read_text() == plain_secret_text()


def test_applying_the_manifests_again_never_replaces_the_secret() -> None:
    """The cores must keep the secret they started with: dispa.yaml only refers to it."""
    assert [doc["kind"] for doc in _documents(PLAIN_SECRET)] == ["Secret"]
    assert not [doc for doc in _documents(PLAIN_MANIFESTS) if doc["kind"] == "Secret"]


def test_every_document_has_the_fields_kubernetes_requires(manifests: list[dict]) -> None:
    kinds = Counter(doc["kind"] for doc in manifests)
    assert kinds == {
        "Namespace": 1,
        "Secret": 1,
        "ConfigMap": 3,
        "Service": 3,
        "StatefulSet": 1,
        "Deployment": 1,
        "Job": 1,
        "PodDisruptionBudget": 1,
        "NetworkPolicy": 1,
    }
    api_versions = {
        "Namespace": "v1",
        "Secret": "v1",
        "ConfigMap": "v1",
        "Service": "v1",
        "StatefulSet": "apps/v1",
        "Deployment": "apps/v1",
        "Job": "batch/v1",
        "PodDisruptionBudget": "policy/v1",
        "NetworkPolicy": "networking.k8s.io/v1",
    }
    names = set()
    for doc in manifests:
        assert doc["apiVersion"] == api_versions[doc["kind"]], doc["kind"]
        name = doc["metadata"]["name"]
        assert len(name) <= 63 and name == name.lower(), name
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "dispa", name
            assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "dispa"
        assert (doc["kind"], name) not in names, f"two {doc['kind']} named {name}"
        names.add((doc["kind"], name))


def test_selectors_match_the_pods_they_are_meant_for(manifests: list[dict]) -> None:
    workloads = {
        doc["kind"]: doc for doc in manifests if doc["kind"] in ("StatefulSet", "Deployment")
    }
    for workload in workloads.values():
        selector = workload["spec"]["selector"]["matchLabels"]
        assert _matches(selector, workload["spec"]["template"]["metadata"]["labels"])
    core_pods = workloads["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    edge_pods = workloads["Deployment"]["spec"]["template"]["metadata"]["labels"]
    # Core and edge selectors must not overlap, or a Service would mix them.
    assert not _matches(workloads["StatefulSet"]["spec"]["selector"]["matchLabels"], edge_pods)
    assert not _matches(workloads["Deployment"]["spec"]["selector"]["matchLabels"], core_pods)

    services = {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == "Service"}
    expected = {"dispa-core-peers": core_pods, "dispa-core": core_pods, "dispa-edge": edge_pods}
    assert set(services) == set(expected)
    for name, pods in expected.items():
        service = services[name]
        assert _matches(service["spec"]["selector"], pods), name
        other = edge_pods if pods is core_pods else core_pods
        assert not _matches(service["spec"]["selector"], other), name
        pod_ports = _ports(workloads["StatefulSet" if pods is core_pods else "Deployment"])
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in pod_ports, f"{name}: no container port {port}"
            assert port["port"] == pod_ports[port["targetPort"]]

    budget = _one(manifests, "PodDisruptionBudget")
    assert _matches(budget["spec"]["selector"]["matchLabels"], core_pods)
    policy = _one(manifests, "NetworkPolicy")
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], core_pods)


def test_cores_are_a_statefulset_with_stable_names_and_volumes(manifests: list[dict]) -> None:
    cores = _one(manifests, "StatefulSet", "dispa-core")
    spec = cores["spec"]
    assert spec["replicas"] == 3
    # Without this, pod 1 waits for pod 0 to be ready, which needs a leader, which
    # needs pod 1: the cluster would never form.
    assert spec["podManagementPolicy"] == "Parallel"
    peers = _one(manifests, "Service", spec["serviceName"])
    assert peers["spec"]["clusterIP"] == "None"
    # The cores look each other up before any is ready (a leader needs two of them).
    assert peers["spec"]["publishNotReadyAddresses"] is True
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    # A majority of cores stays up through voluntary disruptions.
    budget = _one(manifests, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 2


def test_each_core_pod_finds_its_own_valid_config_file(manifests: list[dict]) -> None:
    cores = _one(manifests, "StatefulSet", "dispa-core")
    container = _container(cores)
    # Kubernetes expands $(POD_NAME) in args from the env entry of that name.
    assert container["args"][:2] == ["core", "-c"]
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    mounts = _mounts(cores)
    config_dir, file_pattern = container["args"][2].rsplit("/", 1)
    assert file_pattern == "$(POD_NAME).yaml"
    config_map = _one(manifests, "ConfigMap", mounts[config_dir]["configMap"]["name"])
    secret_volume = next(volume for volume in mounts.values() if "secret" in volume)
    secret = _one(manifests, "Secret", secret_volume["secret"]["secretName"])
    secret_dir = next(path for path, volume in mounts.items() if volume is secret_volume)
    ports = _ports(cores)
    service = cores["spec"]["serviceName"]
    pods = [f"dispa-core-{ordinal}" for ordinal in range(cores["spec"]["replicas"])]
    assert sorted(config_map["data"]) == sorted(f"{pod}.yaml" for pod in pods)

    configs = {}
    for pod in pods:
        text = config_map["data"][f"{pod}.yaml"]
        config = build_model(CoreConfig, parse_text(text, pod), pod)
        configs[pod] = config
        assert config.node.id == pod
        own_name = f"{pod}.{service}.dispa.svc.cluster.local"
        assert split_address(config.raft.address) == (own_name, ports["raft"])
        # The admin address is advertised to the other cores and the edges.
        assert split_address(config.admin.address) == (own_name, ports["admin"])
        assert [split_address(listener.address)[1] for listener in config.listeners] == [
            ports["http"]
        ]
        assert "claim" in mounts[config.node.data_dir], "Raft data must be on the volume"
        secret_path = Path(config.node.secret_file)
        assert str(secret_path.parent) == secret_dir
        assert secret_path.name in secret["stringData"]
    for pod, config in configs.items():
        others = {configs[other].raft.address for other in pods if other != pod}
        assert set(config.raft.peers) == others, pod


def test_probes_use_the_admin_health_endpoints(manifests: list[dict]) -> None:
    workloads = [doc for doc in manifests if doc["kind"] in ("StatefulSet", "Deployment")]
    for workload in workloads:
        container = _container(workload)
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
        assert "admin" in _ports(workload)
        requests = container["resources"]["requests"]
        assert requests["cpu"] and requests["memory"]
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_edge_config_validates_and_follows_every_core(manifests: list[dict]) -> None:
    edges = _one(manifests, "Deployment", "dispa-edge")
    assert edges["spec"]["replicas"] == 2
    container = _container(edges)
    mounts = _mounts(edges)
    script = container["args"][0]
    # Every edge needs its own name: the start script puts the pod's name in the file.
    assert container["command"] == ["/bin/sh", "-c"]
    assert 'sed "s/__POD_NAME__/$POD_NAME/" /etc/dispa/edge/edge.yaml > /tmp/edge.yaml' in script
    assert script.endswith("exec dispa edge -c /tmp/edge.yaml")
    assert "emptyDir" in mounts["/tmp"], "the root filesystem is read-only"
    config_map = _one(manifests, "ConfigMap", mounts["/etc/dispa/edge"]["configMap"]["name"])
    text = config_map["data"]["edge.yaml"].replace("__POD_NAME__", SAMPLE_EDGE_POD)
    config = build_model(EdgeConfig, parse_text(text, "edge.yaml"), "edge.yaml")
    assert config.edge.name == SAMPLE_EDGE_POD
    assert config.edge.data_dir in mounts
    cores = _one(manifests, "StatefulSet", "dispa-core")
    core_configs = _one(manifests, "ConfigMap", "dispa-core")["data"].values()
    core_admins = {yaml.safe_load(text)["admin"]["address"] for text in core_configs}
    assert set(config.cores) == core_admins and len(core_admins) == cores["spec"]["replicas"]
    ports = _ports(edges)
    assert split_address(config.admin.address) == ("0.0.0.0", ports["admin"])
    assert split_address(config.listeners[0].address) == ("0.0.0.0", ports["http"])


def test_the_shared_config_validates_and_the_job_applies_it(manifests: list[dict]) -> None:
    shared = _one(manifests, "ConfigMap", "dispa-shared")
    validate_shared(yaml.safe_load(shared["data"]["shared.yaml"]))
    job = _one(manifests, "Job", "dispa-apply")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "OnFailure", "retried until the cores have a leader"
    container = spec["containers"][0]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    arguments = container["args"]
    assert arguments[:2] == ["apply", "-f"]
    shared_dir, shared_file = arguments[2].rsplit("/", 1)
    assert volumes[mounts[shared_dir]]["configMap"]["name"] == "dispa-shared"
    assert shared_file in shared["data"]
    host, port = split_address(arguments[arguments.index("--admin") + 1])
    service = _one(manifests, "Service", host)
    assert port in [entry["port"] for entry in service["spec"]["ports"]]
    from dispa.cli import build_parser

    parsed = build_parser().parse_args(arguments)
    assert parsed.command == "apply" and parsed.admin == "dispa-core:9911"


def test_the_daemonset_variant_runs_one_edge_per_node() -> None:
    (daemonset,) = _documents(PLAIN_DAEMONSET)
    assert daemonset["kind"] == "DaemonSet" and daemonset["apiVersion"] == "apps/v1"
    assert "replicas" not in daemonset["spec"]
    assert _matches(
        daemonset["spec"]["selector"]["matchLabels"],
        daemonset["spec"]["template"]["metadata"]["labels"],
    )
    deployment = _one(_documents(PLAIN_MANIFESTS), "Deployment", "dispa-edge")
    assert daemonset["metadata"]["name"] == deployment["metadata"]["name"]
    assert _container(daemonset) == _container(deployment)


# ---------------------------------------------------------------- the chart's values


def test_chart_metadata() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["name"] == "dispa"
    assert meta["type"] == "application"
    from dispa import __version__

    assert meta["appVersion"] == __version__
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == __version__


def test_the_chart_refuses_to_render_without_a_secret() -> None:
    with pytest.raises(TemplateError, match=r"required: set secret.value"):
        chart_documents()


def test_an_existing_secret_is_used_instead_of_creating_one() -> None:
    documents = chart_documents(values={"secret": {"existingSecret": "my-dispa-secret"}})
    assert not [doc for doc in documents if doc["kind"] == "Secret"]
    cores = _one(documents, "StatefulSet")
    volumes = cores["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": "my-dispa-secret", "defaultMode": 0o440} in [
        volume.get("secret") for volume in volumes
    ]


def test_five_cores_each_get_a_file_listing_the_four_others() -> None:
    documents = chart_documents(
        values={"secret": {"value": "s"}, "core": {"replicas": 5, "region": "eu-west"}},
        release={"Name": "gw", "Namespace": "edge-net"},
    )
    files = _one(documents, "ConfigMap", "gw-core")["data"]
    assert sorted(files) == [f"gw-core-{n}.yaml" for n in range(5)]
    for name, text in files.items():
        config = build_model(CoreConfig, parse_text(text, name), name)
        assert config.node.region == "eu-west"
        assert len(config.raft.peers) == 4
        assert config.raft.address not in config.raft.peers
        assert config.raft.address.endswith(".gw-core-peers.edge-net.svc.cluster.local:7001")
    assert _one(documents, "PodDisruptionBudget")["spec"]["minAvailable"] == 3
    edge_text = _one(documents, "ConfigMap", "gw-edge")["data"]["edge.yaml"]
    assert len(yaml.safe_load(edge_text)["cores"]) == 5


def test_edges_as_a_daemonset_or_not_at_all() -> None:
    daemonset = chart_documents(values={"secret": {"value": "s"}, "edge": {"kind": "DaemonSet"}})
    assert _one(daemonset, "DaemonSet")["metadata"]["name"] == "dispa-edge"
    assert not [doc for doc in daemonset if doc["kind"] == "Deployment"]
    without = chart_documents(values={"secret": {"value": "s"}, "edge": {"enabled": False}})
    assert not [doc for doc in without if "edge" in doc["metadata"]["name"]]
    assert _one(without, "StatefulSet")


def test_a_storage_class_is_set_only_when_given() -> None:
    default = chart_documents(values={"secret": {"value": "s"}})
    claim = _one(default, "StatefulSet")["spec"]["volumeClaimTemplates"][0]
    assert "storageClassName" not in claim["spec"]
    chosen = chart_documents(
        values={"secret": {"value": "s"}, "core": {"storage": {"storageClassName": "fast-ssd"}}}
    )
    claim = _one(chosen, "StatefulSet")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "fast-ssd"


def test_every_value_is_used_by_a_template() -> None:
    """values.yaml documents what can be set: a value no template reads would mislead."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    templates = "".join(path.read_text() for path in (CHART / "templates").iterdir())

    def leaves(mapping: dict, prefix: str) -> list[str]:
        found = []
        for key, value in mapping.items():
            path = f"{prefix}.{key}"
            if isinstance(value, dict) and key != "resources":
                found.extend(leaves(value, path))
            else:
                found.append(path)
        return found

    unused = [
        path
        for path in leaves(values, "Values")
        if f".{path}" not in templates and f"$.{path}" not in templates
    ]
    assert not unused, f"values no template reads: {unused}"


def test_the_renderer_is_strict_about_missing_values() -> None:
    """A misspelled key fails instead of rendering as an empty string, as Helm would."""
    nodes, defines = parse("name: {{ .Values.image.tagg | quote }}\n")
    context = {"Values": {"image": {"tag": "1"}}}
    with pytest.raises(TemplateError, match="no key 'tagg'"):
        Renderer(defines).run(nodes, context, context, [{}])
    with pytest.raises(TemplateError, match="never closed"):
        parse("{{ if .Values.a }}\nno end\n")


def test_the_plain_release_renders_every_template() -> None:
    rendered = render_chart(values={"secret": {"value": "s"}}, release=PLAIN_RELEASE)
    templates = {
        path.name for path in (CHART / "templates").iterdir() if not path.name.startswith("_")
    }
    assert set(rendered) == templates
    assert all(text.strip() for text in rendered.values())
