"""The DNS provider against a real dnsmasq on a free loopback port.

A records come from a hosts file that the test rewrites and dnsmasq re-reads on SIGHUP; SRV
records are in dnsmasq's config file, which it reads only at start, so those tests restart it
on the same port. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path

import pytest
from conftest import HOST, Process, free_port
from support import async_wait_until

from dispa.discovery.backoff import RetryBackoff
from dispa.discovery.dns_provider import DnsPool, DnsProvider
from dispa.discovery.provider import DiscoveredEndpoint
from dispa.discovery.watcher import DiscoveryWatcher

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
pytestmark = pytest.mark.skipif(not Path(DNSMASQ).exists(), reason="needs dnsmasq")


class Dnsmasq:
    """dnsmasq answering only for *.test, from our hosts file and config, TTL 1 s."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.hosts = workdir / "hosts"
        self.config = workdir / "dnsmasq.conf"
        self.hosts.write_text("")
        self.config.write_text("")
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> None:
        argv = [
            DNSMASQ,
            "--keep-in-foreground",
            f"--conf-file={self.config}",
            f"--port={self.port}",
            f"--listen-address={HOST}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts}",
            "--local=/test/",  # a name of ours that is not there: NXDOMAIN, not forwarded
            "--local-ttl=1",
            "--user=root",  # the test's files are not readable by dnsmasq's usual user
            f"--pid-file={self.workdir / 'dnsmasq.pid'}",
        ]
        self.process = Process(argv, self.workdir, f"dnsmasq-{self.starts}")
        self.starts += 1

    def reload_hosts(self, text: str) -> None:
        self.hosts.write_text(text)
        self.process.signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def dnsmasq(tmp_path: Path):
    server = Dnsmasq(tmp_path)
    yield server
    server.stop()


def endpoints(*addresses: str, weight: int = 1) -> list[DiscoveredEndpoint]:
    return sorted(DiscoveredEndpoint(address, weight) for address in addresses)


class Latest:
    def __init__(self) -> None:
        self.merged: dict = {}

    def __call__(self, merged: dict) -> None:
        self.merged = merged


def provider(port: int, pools: dict[str, DnsPool]) -> DnsProvider:
    return DnsProvider(
        "dns",
        pools,
        server=(HOST, port),
        timeout=0.3,
        min_interval=0.1,
        negative_interval=0.2,
        backoff=RetryBackoff(initial=0.1, maximum=0.3),
    )


async def test_a_records_appear_change_and_survive_the_server_going_away(dnsmasq) -> None:
    dnsmasq.hosts.write_text("127.0.0.11 web.test\n127.0.0.12 web.test\n")
    dnsmasq.start()
    latest = Latest()
    dns = provider(
        dnsmasq.port, {"web": DnsPool("web.test", port=8080), "new": DnsPool("new.test", port=9000)}
    )
    watcher = DiscoveryWatcher([dns], latest, throttle=0.0)
    await watcher.start()
    try:
        want = endpoints("127.0.0.11:8080", "127.0.0.12:8080")
        await async_wait_until(
            lambda: latest.merged.get("web@dns") == want, timeout=10, what="both A records"
        )
        assert latest.merged["new@dns"] == []  # NXDOMAIN: an answer, an empty pool

        dnsmasq.reload_hosts("127.0.0.12 web.test\n127.0.0.30 new.test\n")
        await async_wait_until(
            lambda: (
                latest.merged.get("web@dns") == endpoints("127.0.0.12:8080")
                and latest.merged.get("new@dns") == endpoints("127.0.0.30:9000")
            ),
            timeout=10,
            what="the re-read hosts file (TTL 1 s)",
        )

        dnsmasq.stop()
        await async_wait_until(
            lambda: watcher.statistics()[0]["status"] == "failing", timeout=10, what="failing"
        )
        [stats] = watcher.statistics()
        assert stats["consecutive_failures"] >= 1 and stats["endpoints"] == 2
        assert latest.merged["web@dns"] == endpoints("127.0.0.12:8080")  # the last good set
        assert latest.merged["new@dns"] == endpoints("127.0.0.30:9000")
    finally:
        await watcher.stop()


SRV_CONFIG = """
host-record=a.web.test,127.0.0.21
host-record=b.web.test,127.0.0.22
host-record=c.web.test,127.0.0.23
srv-host=_http._tcp.web.test,a.web.test,8081,0,{a_weight}
srv-host=_http._tcp.web.test,b.web.test,8082,0,30
srv-host=_http._tcp.web.test,c.web.test,8083,{c_priority},50
"""


async def test_srv_priority_and_weight_become_endpoint_weights(dnsmasq) -> None:
    dnsmasq.config.write_text(SRV_CONFIG.format(a_weight=10, c_priority=1))
    dnsmasq.start()
    latest = Latest()
    dns = provider(dnsmasq.port, {"web": DnsPool("_http._tcp.web.test", record="SRV")})
    watcher = DiscoveryWatcher([dns], latest, throttle=0.0)
    await watcher.start()
    try:
        # c has priority 1: a fallback, left out while the priority-0 group answers.
        want = sorted(
            [DiscoveredEndpoint("127.0.0.21:8081", 10), DiscoveredEndpoint("127.0.0.22:8082", 30)]
        )
        await async_wait_until(
            lambda: latest.merged.get("web@dns") == want, timeout=10, what="the SRV group"
        )

        # dnsmasq gives TTL 1 s: the provider asks about once a second, not every 0.1 s
        # (its min_interval). In the A test, an NXDOMAIN pool is re-asked sooner on purpose.
        rounds = dns.rounds
        await asyncio.sleep(2.5)
        assert 1 <= dns.rounds - rounds <= 4

        # dnsmasq reads srv-host only at start: restart it with new weights and priorities.
        dnsmasq.stop()
        dnsmasq.config.write_text(SRV_CONFIG.format(a_weight=2000, c_priority=0))
        dnsmasq.start()
        want = sorted(
            [
                DiscoveredEndpoint("127.0.0.21:8081", 1000),  # clamped to the config's 1..1000
                DiscoveredEndpoint("127.0.0.22:8082", 30),
                DiscoveredEndpoint("127.0.0.23:8083", 50),
            ]
        )
        await async_wait_until(
            lambda: latest.merged.get("web@dns") == want, timeout=10, what="the new SRV records"
        )
        assert watcher.statistics()[0]["status"] == "ok"
    finally:
        await watcher.stop()
