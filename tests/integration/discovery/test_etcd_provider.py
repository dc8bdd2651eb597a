"""The etcd provider and ``dispa register`` against a real single-node etcd on loopback.

Registrations run as real processes (``python -m dispa.discovery.register``), so killing
one with SIGKILL is a real dead instance whose lease runs out.
"""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import aetcd
import pytest
from conftest import HOST, PYTHON, Process, free_ports, wait_until
from support import async_wait_until

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.etcd_provider import EtcdProvider
from dispa.discovery.provider import DiscoveredEndpoint
from dispa.discovery.register import main_register
from dispa.discovery.watcher import DiscoveryWatcher

ETCD = Path("/usr/bin/etcd")
pytestmark = pytest.mark.skipif(not ETCD.exists(), reason="needs the etcd server at /usr/bin/etcd")
PREFIX = "/test/discovery"


class Etcd:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        client_port, peer_port = free_ports(2)
        self.port = client_port
        self.endpoint = f"http://{HOST}:{client_port}"
        peer = f"http://{HOST}:{peer_port}"
        flags = {
            "name": "t",
            "data-dir": str(workdir / "etcd"),
            "listen-client-urls": self.endpoint,
            "advertise-client-urls": self.endpoint,
            "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer,
            "initial-cluster": f"t={peer}",
        }
        argv = [
            str(ETCD),
            *(part for flag, value in flags.items() for part in (f"--{flag}", value)),
        ]
        self.process = Process(argv, workdir, "etcd")
        wait_until(self._healthy, timeout=15.0, what="etcd to answer /health")

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1.0) as response:
            return json.loads(response.read()).get("health") == "true"

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
def etcd(tmp_path: Path):
    server = Etcd(tmp_path)
    yield server
    server.stop()


def registration(etcd: Etcd, workdir: Path, instance: str, address: str, ttl: int = 2):
    argv = [PYTHON, "-m", "dispa.discovery.register", "--etcd", etcd.endpoint]
    argv += ["--prefix", PREFIX, "--pool", "web", "--instance", instance]
    argv += ["--address", address, "--ttl", str(ttl), "--weight", "7"]
    return Process(argv, workdir, f"register-{instance}")


class Latest:
    def __init__(self) -> None:
        self.merged: dict = {}

    def __call__(self, merged: dict) -> None:
        self.merged = merged


def addresses(latest: Latest) -> set[str]:
    return {endpoint.address for endpoint in latest.merged.get("web@etcd", [])}


async def test_registered_instances_appear_and_a_killed_one_vanishes_after_its_ttl(
    etcd: Etcd, tmp_path: Path
) -> None:
    latest = Latest()
    provider = EtcdProvider("etcd", [etcd.endpoint], PREFIX, backoff=RetryBackoff(0.1, 0.5))
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    one = registration(etcd, tmp_path, "one", "127.0.0.1:8001")
    two = registration(etcd, tmp_path, "two", "127.0.0.1:8002")
    try:
        await async_wait_until(
            lambda: addresses(latest) == {"127.0.0.1:8001", "127.0.0.1:8002"},
            timeout=10,
            what="both registrations",
        )
        assert DiscoveredEndpoint("127.0.0.1:8001", 7) in latest.merged["web@etcd"]

        # A hand-written key with a bad value is skipped and reported, never fatal.
        client = aetcd.Client(host=HOST, port=etcd.port)
        await client.put(f"{PREFIX}/web/bad".encode(), b'{"address": "nope"}')
        await async_wait_until(
            lambda: f"{PREFIX}/web/bad" in watcher.statistics()[0]["skipped_keys"], timeout=5
        )
        await client.close()

        one.signal(signal.SIGKILL)  # dead without deregistering: the lease has to run out
        await async_wait_until(
            lambda: addresses(latest) == {"127.0.0.1:8002"}, timeout=10, what="lease expiry"
        )
        two.signal(signal.SIGTERM)  # a clean stop revokes the lease: gone at once
        await async_wait_until(lambda: addresses(latest) == set(), timeout=3, what="revoke")
        # No key left under the pool: the pool is gone from the view (apply_discovered then
        # leaves the upstream's endpoints as they were).
        assert "web@etcd" not in latest.merged
        assert watcher.statistics()[0]["status"] == "ok"
    finally:
        one.stop()
        two.stop()
        await watcher.stop()


async def test_etcd_stopped_keeps_the_last_good_set(etcd: Etcd, tmp_path: Path) -> None:
    latest = Latest()
    provider = EtcdProvider(
        "etcd", [etcd.endpoint], PREFIX, timeout=1.0, backoff=RetryBackoff(0.1, 0.5)
    )
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    client = aetcd.Client(host=HOST, port=etcd.port)
    value = json.dumps({"address": "127.0.0.1:9001", "weight": 3, "region": "eu"})
    await client.put(f"{PREFIX}/web/static".encode(), value.encode())
    await client.close()
    await watcher.start()
    try:
        want = [DiscoveredEndpoint("127.0.0.1:9001", 3, "eu")]
        await async_wait_until(lambda: latest.merged.get("web@etcd") == want, timeout=10)
        etcd.stop()
        await async_wait_until(
            lambda: watcher.statistics()[0]["status"] == "failing", timeout=15, what="failing"
        )
        assert latest.merged["web@etcd"] == want
        assert watcher.statistics()[0]["endpoints"] == 1
    finally:
        await watcher.stop()


def test_register_refuses_a_bad_address(capsys) -> None:
    argv = ["--etcd", "http://127.0.0.1:1", "--pool", "web", "--instance", "x"]
    assert main_register([*argv, "--address", "no-port"]) == 2
    assert "not an address" in capsys.readouterr().out


async def test_a_hostile_registration_is_skipped_and_hides_no_other(etcd: Etcd) -> None:
    """Anyone who may register may write any bytes under the prefix: a value nested past
    the parser's limit, or a key that is not UTF-8, is skipped (the value's key reported
    with the reason), and every other instance is still served."""
    client = aetcd.Client(host=HOST, port=etcd.port)
    good = json.dumps({"address": "127.0.0.1:9001"}).encode()
    await client.put(f"{PREFIX}/web/good".encode(), good)
    await client.put(f"{PREFIX}/web/deep".encode(), b"[" * 100_000 + b"]" * 100_000)
    await client.put(f"{PREFIX}/web/".encode() + b"\xff\xfe", good)
    latest = Latest()
    provider = EtcdProvider("etcd", [etcd.endpoint], PREFIX, backoff=RetryBackoff(0.1, 0.5))
    watcher = DiscoveryWatcher([provider], latest, throttle=0.0)
    await watcher.start()
    try:
        await async_wait_until(
            lambda: addresses(latest) == {"127.0.0.1:9001"}, timeout=10, what="the good key"
        )
        skipped = watcher.statistics()[0]["skipped_keys"]
        assert "nested too deeply" in skipped[f"{PREFIX}/web/deep"], skipped
        # Written while the provider watches: the same, through the watch.
        await client.put(f"{PREFIX}/web/deeper".encode(), b"[" * 100_000)
        await client.put(f"{PREFIX}/web/more".encode(), b'{"address": "127.0.0.1:9002"}')
        await async_wait_until(
            lambda: addresses(latest) == {"127.0.0.1:9001", "127.0.0.1:9002"},
            timeout=10,
            what="the key written later",
        )
        assert f"{PREFIX}/web/deeper" in watcher.statistics()[0]["skipped_keys"]
        assert watcher.statistics()[0]["status"] == "ok"
    finally:
        await client.close()
        await watcher.stop()
