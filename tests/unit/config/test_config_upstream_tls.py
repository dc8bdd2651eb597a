"""The ``upstreams[].tls`` section: defaults, shape rules and file checks, each problem
naming the path of its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispa.config.errors import ConfigError
from dispa.config.load import build_gateway
from tests.tls_certs import TestCA, other_key_pem


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def files(tmp_path: Path, ca: TestCA) -> dict[str, Path]:
    client_cert, client_key = ca.issue("client", client=True).write(tmp_path, "client")
    return {"ca": ca.write(tmp_path), "client_cert": client_cert, "client_key": client_key}


def gateway_with(tls: object, **upstream: object) -> dict:
    return {
        "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
        "upstreams": [
            {"name": "api", "endpoints": [{"address": "api.internal:443"}], "tls": tls, **upstream}
        ],
        "routes": [{"match": {"path_prefix": "/"}, "upstream": "api"}],
    }


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_gateway(data, "test.yaml")
    return caught.value.problems


def test_defaults_verify_with_the_system_store_and_tls_1_2() -> None:
    tls = build_gateway(gateway_with({}), "test.yaml").upstreams[0].tls
    assert tls is not None
    assert (tls.verify, tls.ca, tls.server_name, tls.min_version) == (True, None, None, "1.2")
    assert tls.client_cert is None and tls.client_key is None


def test_no_tls_block_means_plain_tcp() -> None:
    data = gateway_with({})
    del data["upstreams"][0]["tls"]
    assert build_gateway(data, "test.yaml").upstreams[0].tls is None


def test_every_field_loads(files: dict[str, Path]) -> None:
    section = {
        "verify": True,
        "ca": str(files["ca"]),
        "server_name": "api.internal",
        "client_cert": str(files["client_cert"]),
        "client_key": str(files["client_key"]),
        "min_version": 1.3,  # a YAML number is read as the version text
    }
    tls = build_gateway(gateway_with(section), "test.yaml").upstreams[0].tls
    assert tls.server_name == "api.internal"
    assert tls.min_version == "1.3"


def test_client_cert_without_key_names_the_key_field(files: dict[str, Path]) -> None:
    problems = problems_of(gateway_with({"client_cert": str(files["client_cert"])}))
    assert len(problems) == 1, problems
    assert problems[0].startswith("upstreams[0].tls.client_key:")
    assert "client_cert needs its client_key" in problems[0]


def test_client_key_without_cert_names_the_key_field(files: dict[str, Path]) -> None:
    problems = problems_of(gateway_with({"client_key": str(files["client_key"])}))
    assert len(problems) == 1, problems
    assert problems[0].startswith("upstreams[0].tls.client_key:")
    assert "client_key needs its client_cert" in problems[0]


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"verfiy": False}, "verfiy"),  # a typo is an error, not a setting ignored
        ({"min_version": "1.1"}, "min_version"),
        ({"server_name": "bad name"}, "server_name"),
        ({"ca": ""}, "ca"),
    ],
)
def test_strict_fields(section: dict, field: str) -> None:
    problems = problems_of(gateway_with(section))
    assert any(p.startswith(f"upstreams[0].tls.{field}") for p in problems), problems


def test_missing_ca_file_is_reported_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    problems = problems_of(gateway_with({"ca": str(missing)}))
    assert problems == [f"upstreams[0].tls.ca: cannot read {missing}: No such file or directory"]


def test_ca_that_is_not_a_certificate(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    problems = problems_of(gateway_with({"ca": str(junk)}))
    assert problems == [
        f"upstreams[0].tls.ca: {junk} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    ]


def test_bad_client_files_name_each_field(tmp_path: Path, files: dict[str, Path]) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    section = {"client_cert": str(junk), "client_key": str(tmp_path / "missing.key")}
    problems = problems_of(gateway_with(section))
    assert [p.split(":")[0] for p in problems] == [
        "upstreams[0].tls.client_cert",
        "upstreams[0].tls.client_key",
    ], problems


def test_key_of_another_certificate(tmp_path: Path, files: dict[str, Path]) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(other_key_pem())
    section = {"client_cert": str(files["client_cert"]), "client_key": str(other)}
    problems = problems_of(gateway_with(section))
    assert problems == [
        f"upstreams[0].tls.client_key: {other} is not the key of the certificate in "
        f"{files['client_cert']}"
    ]


def test_tls_with_h2_is_accepted() -> None:
    # The HTTP/2 pool connects over TLS and insists on h2 by ALPN (http2/upstream_pool.py).
    upstream = build_gateway(gateway_with({}, protocol="h2"), "test.yaml").upstreams[0]
    assert (upstream.protocol, upstream.tls is not None) == ("h2", True)
