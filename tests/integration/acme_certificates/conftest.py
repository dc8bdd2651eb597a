"""A real ACME server for the ACME tests: Debian's ``pebble``, and a ``dnsmasq`` it asks.

pebble validates HTTP-01 for real: it resolves each name through our dnsmasq, which
answers from a hosts file (``*.acme.test`` -> loopback addresses), and fetches
``http://NAME:HTTP_PORT/.well-known/acme-challenge/TOKEN``. Every node of a test listens on
its own loopback address (127.0.0.1, .2, .3 ...) on that one port, so a name's address
says which node pebble asks. pebble's own HTTPS certificate is made here (tests/tls_certs);
its issuing root is read from its management interface. Every wait is bounded; every
process is stopped at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster.conftest import Cluster
from support import free_ports, wait_until

from tests.tls_certs import TestCA

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
needs_pebble = pytest.mark.skipif(
    not (Path(PEBBLE).exists() and Path(DNSMASQ).exists()),
    reason="needs pebble and dnsmasq (make system-packages)",
)


class Child:
    """A process in its own session, its output in a file, stopped at teardown."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5.0)


class Pebble:
    def __init__(self, workdir: Path, *, validity: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        (
            self.dns_port,
            self.acme_port,
            self.management_port,
            self.http_port,
            self.tls_port,
        ) = free_ports(5)
        self.hosts = workdir / "hosts"
        self.hosts.write_text("")
        ca = TestCA("pebble test CA")
        self.ca_bundle = ca.write(workdir, "pebble-https-ca")
        cert, key = ca.issue("127.0.0.1").write(workdir, "pebble-https")
        config = {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if validity is not None:
            config["certificateValidityPeriod"] = validity
        self.config = workdir / "pebble.json"
        self.config.write_text(json.dumps({"pebble": config}))
        self.directory = f"https://127.0.0.1:{self.acme_port}/dir"
        self.dnsmasq: Child | None = None
        self.pebble: Child | None = None

    def resolve(self, names: dict[str, str]) -> None:
        """Name -> loopback address, read by dnsmasq now (SIGHUP re-reads the file)."""
        self.hosts.write_text("".join(f"{address} {name}\n" for name, address in names.items()))
        if self.dnsmasq is not None:
            self.dnsmasq.popen.send_signal(signal.SIGHUP)

    def start(self) -> None:
        self.dnsmasq = Child(
            [
                DNSMASQ,
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                f"--port={self.dns_port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                f"--addn-hosts={self.hosts}",
                "--local=/test/",  # names of ours that are not there: NXDOMAIN, not forwarded
                "--local-ttl=0",
                "--user=root",  # the test's files are not readable by dnsmasq's usual user
                f"--pid-file={self.workdir / 'dnsmasq.pid'}",
            ],
            self.workdir / "dnsmasq.log",
        )
        self.pebble = Child(
            [PEBBLE, "-config", str(self.config), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            self.workdir / "pebble.log",
            # No random pause before validating (tests at full speed); every nonce good;
            # every order's names validated anew. Never PEBBLE_VA_ALWAYS_VALID: each
            # challenge is really answered by the gateway.
            env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"},
        )
        wait_until(self._answers, timeout=15.0, what="pebble's directory")

    def _answers(self) -> bool:
        if self.pebble.popen.poll() is not None:
            raise AssertionError(f"pebble exited:\n{self.pebble.text()[-3000:]}")
        try:
            self._get(f"https://127.0.0.1:{self.acme_port}/dir")
        except OSError:
            return False
        return True

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(url, context=context, timeout=5.0) as response:
            return response.read()

    def issuing_root(self) -> Path:
        """The root pebble signs with (made anew at each start), as a PEM file."""
        path = self.workdir / "issuing-root.pem"
        path.write_bytes(self._get(f"https://127.0.0.1:{self.management_port}/roots/0"))
        return path

    def acme_config(self, domains: list[str], **extra) -> dict:
        return {
            "directory": self.directory,
            "email": "ops@acme.test",
            "domains": domains,
            "ca_bundle": str(self.ca_bundle),
            **extra,
        }

    def stop(self) -> None:
        for child in (self.pebble, self.dnsmasq):
            if child is not None:
                child.stop()


@pytest.fixture
def make_pebble(tmp_path: Path) -> Iterator:
    started: list[Pebble] = []

    def make(**options) -> Pebble:
        pebble = Pebble(tmp_path / "pebble", **options)
        started.append(pebble)
        pebble.start()
        return pebble

    try:
        yield make
    finally:
        for pebble in started:
            pebble.stop()


def acme_listeners(http_address: str, https_port: int) -> list[dict]:
    """A node's listeners: plaintext on its own loopback address at pebble's HTTP port
    (challenges), and TLS with the managed certificate on 127.0.0.1."""
    return [
        {"name": "http", "address": http_address},
        {"name": "https", "address": f"127.0.0.1:{https_port}", "tls": {"acme": True}},
    ]


def acme_cluster(workdir: Path, pebble: Pebble, count: int = 3) -> Cluster:
    """A cluster whose core N listens for challenges on 127.0.0.N at pebble's HTTP port."""
    cluster = Cluster(workdir, count=count)
    for index, core in enumerate(cluster.cores):
        (https_port,) = free_ports(1)
        core.https_address = f"127.0.0.1:{https_port}"
        core.http_address = f"127.0.0.{index + 1}:{pebble.http_port}"
        core.config["listeners"] = acme_listeners(core.http_address, https_port)
        core.config_path.write_text(yaml.safe_dump(core.config, sort_keys=False))
    return cluster


@pytest.fixture
def make_acme_cluster(tmp_path: Path) -> Iterator:
    clusters: list[Cluster] = []

    def make(pebble: Pebble, count: int = 3) -> Cluster:
        cluster = acme_cluster(tmp_path / "cluster", pebble, count)
        clusters.append(cluster)
        cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop_all()
