"""Relative paths in a config file name files beside that file, whatever folder Dispa is
started from: a gateway's certificates, access log and discovery file; an edge's geo
database and data directory; ``dispa validate`` run from elsewhere.

Every process here runs in another folder than its config's (the harness starts them in
the repository; the files live under tmp_path), and nothing the configs name exists
relative to that working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import (
    HOST,
    PYTHON,
    REPO,
    Processes,
    Upstream,
    curl,
    free_ports,
    http_get,
    make_config,
    wait_until,
)

from tests.tls_certs import TestCA

CITY_DB = REPO / "tests" / "data" / "geoip" / "GeoIP2-City-Test.mmdb"


def write_pki(folder: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 in ``folder``; the CA's path."""
    ca = TestCA()
    ca.issue("gateway").write(folder, "server")
    return ca.write(folder)


def gateway_file(conf: Path, upstream: Upstream) -> dict:
    """A TLS listener, an access log and a file discovery provider, all relative."""
    (conf / "logs").mkdir(parents=True)
    (conf / "endpoints.json").write_text(json.dumps({"web": [{"address": upstream.address}]}))
    config = make_config(
        upstreams=[{"name": "app", "discovery": "web@files"}],
        routes=[{"match": {"path_prefix": "/"}, "upstream": "app"}],
        listeners=[
            {
                "name": "public",
                "tls": {"certificates": [{"cert": "certs/server.pem", "key": "certs/server.key"}]},
            }
        ],
        access_log={"enabled": True, "path": "logs/access.log", "flush_interval": "100ms"},
        discovery={"providers": [{"type": "file", "name": "files", "path": "endpoints.json"}]},
    )
    return config


def test_a_gateway_reads_the_files_beside_its_config(
    processes: Processes, upstream_a: Upstream, tmp_path: Path
) -> None:
    conf = tmp_path / "conf"
    ca_path = write_pki(conf / "certs")
    gateway = processes.gateway(gateway_file(conf, upstream_a), conf)
    assert Path(gateway.process.popen.args[-1]).parent == conf  # the file is in conf/ ...
    assert not (REPO / "certs").exists() and not (REPO / "endpoints.json").exists()  # ... only
    result = curl("--cacert", str(ca_path), f"https://{HOST}:{gateway.port}/")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello from alpha\n"

    log_path = conf / "logs" / "access.log"
    wait_until(
        lambda: log_path.exists() and '"status":200' in log_path.read_text(),
        timeout=10.0,
        what="the access log beside the config",
    )
    assert not (REPO / "logs" / "access.log").exists()
    # What the gateway serves shows the paths as it resolved them.
    served = gateway.admin_json("/api/v1/config")["config"]
    certificate = served["listeners"][0]["tls"]["certificates"][0]
    assert certificate == {
        "cert": str(conf / "certs/server.pem"),
        "key": str(conf / "certs/server.key"),
    }
    assert served["access_log"]["path"] == str(conf / "logs/access.log")


def run_dispa(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dispa", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


def test_validate_from_another_folder(upstream_a: Upstream, tmp_path: Path) -> None:
    conf, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_pki(conf / "certs")
    (conf / "gateway.yaml").write_text(yaml.safe_dump(gateway_file(conf, upstream_a)))
    result = run_dispa(elsewhere, "validate", "-c", "../conf/gateway.yaml")
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr

    # A missing file is reported with the path Dispa looked for, beside the config.
    (conf / "certs" / "server.key").unlink()
    result = run_dispa(elsewhere, "validate", "-c", "../conf/gateway.yaml")
    assert result.returncode == 2
    assert f"cannot read {conf / 'certs' / 'server.key'}" in result.stderr, result.stderr


def test_an_edge_started_elsewhere_opens_its_geo_database_and_data_dir(
    processes: Processes, tmp_path: Path
) -> None:
    """The trap of the example edge files: ``geo.database`` relative to the file."""
    conf = tmp_path / "edge"
    (tmp_path / "geo").mkdir()
    shutil.copy(CITY_DB, tmp_path / "geo" / "City.mmdb")
    listener_port, admin_port, core_port = free_ports(3)
    config = {
        "edge": {"name": "edge-t", "region": "eu", "data_dir": "state"},
        "cores": [f"{HOST}:{core_port}"],  # none there: the edge waits, serving a 503
        "listeners": [{"name": "public", "address": f"{HOST}:{listener_port}"}],
        "admin": {"address": f"{HOST}:{admin_port}"},
        "geo": {"database": "../geo/City.mmdb"},
    }
    conf.mkdir()
    (conf / "edge.yaml").write_text(yaml.safe_dump(config))
    edge = processes.start([PYTHON, "-m", "dispa", "edge", "-c", str(conf / "edge.yaml")], "edge")

    def answers() -> bool:
        assert edge.alive(), edge.stderr_text()
        return http_get(f"http://{HOST}:{admin_port}/api/v1/node", timeout=1.0)[0] == 200

    wait_until(answers, timeout=20.0, what="the edge's admin API")
    assert (conf / "state").is_dir()  # its data directory, beside its file
    assert not (REPO / "state").exists()
    assert "GeoIP" not in edge.stderr_text()
