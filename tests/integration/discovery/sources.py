"""Discovery sources the end-to-end tests drive: one class per provider kind, same verbs.

Each source says which provider entry reaches it, and lets a test ``publish`` a whole pool
``{address: weight}``, make the source ``go_away`` (stop answering) and ``come_back``.
dnsmasq and etcd are real processes; Consul and the Kubernetes API server are the
wire-faithful fakes of test_consul_provider.py and test_kubernetes_provider.py, with a
switch that makes them fail.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aetcd
from aiohttp import web
from conftest import HOST, Process, free_ports, wait_until

from discovery.test_consul_provider import FakeConsul, instance
from discovery.test_dns_provider import DNSMASQ, Dnsmasq
from discovery.test_etcd_provider import ETCD
from discovery.test_kubernetes_provider import FakeApiServer, endpoint_slice, kubeconfig

RETRY = {"initial": 0.1, "maximum": 0.5}
POOL = "web"


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


class FileSource:
    kind = "file"
    weights = True

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "endpoints.json"

    async def start(self) -> None:
        pass

    def provider(self, name: str) -> dict:
        return {
            "type": "file",
            "name": name,
            "path": str(self.path),
            "interval": 0.1,
            "retry": RETRY,
        }

    async def publish(self, pool: dict[str, int]) -> None:
        entries = [{"address": address, "weight": weight} for address, weight in pool.items()]
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps({POOL: entries}))
        os.replace(scratch, self.path)  # atomically, as the docs ask

    async def go_away(self) -> None:
        self.path.unlink()

    async def come_back(self, pool: dict[str, int]) -> None:
        await self.publish(pool)

    async def stop(self) -> None:
        pass


class DnsSource:
    """SRV records (they carry ports and weights) served by a real dnsmasq; it reads them
    only at start, so each publish restarts it on the same port."""

    kind = "dns"
    weights = True

    def __init__(self, workdir: Path) -> None:
        self.dnsmasq = Dnsmasq(workdir)
        self.dnsmasq.hosts.write_text(f"{HOST} up.test\n")

    async def start(self) -> None:
        pass

    def provider(self, name: str) -> dict:
        return {
            "type": "dns",
            "name": name,
            "server": f"{HOST}:{self.dnsmasq.port}",
            "timeout": 0.3,
            "min_interval": 0.1,
            "retry": RETRY,
            "pools": {POOL: {"query": "_http._tcp.web.test", "record": "SRV"}},
        }

    async def publish(self, pool: dict[str, int]) -> None:
        records = [
            f"srv-host=_http._tcp.web.test,up.test,{port_of(address)},0,{weight}"
            for address, weight in pool.items()
        ]
        self.dnsmasq.stop()
        self.dnsmasq.config.write_text("\n".join(records) + "\n")
        self.dnsmasq.start()

    async def go_away(self) -> None:
        self.dnsmasq.stop()

    async def come_back(self, pool: dict[str, int]) -> None:
        await self.publish(pool)

    async def stop(self) -> None:
        self.dnsmasq.stop()


class EtcdServer:
    """A single-node etcd that can be stopped and started again on the same ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port, peer_port = free_ports(2)
        self.endpoint = f"http://{HOST}:{self.port}"
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
        self.argv = [
            str(ETCD),
            *(part for flag, value in flags.items() for part in (f"--{flag}", value)),
        ]
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> None:
        self.process = Process(self.argv, self.workdir, f"etcd-{self.starts}")
        self.starts += 1
        wait_until(self._healthy, timeout=15.0, what="etcd to answer /health")

    def _healthy(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1.0) as response:
            return json.loads(response.read()).get("health") == "true"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    async def publish(self, prefix: str, pool: dict[str, int]) -> None:
        """Keys PREFIX/web/PORT for the pool's endpoints; every other key of the pool goes."""
        client = aetcd.Client(host=HOST, port=self.port)
        try:
            wanted = {
                f"{prefix}/{POOL}/{port_of(address)}".encode(): json.dumps(
                    {"address": address, "weight": weight}
                ).encode()
                for address, weight in pool.items()
            }
            for key, value in wanted.items():
                await client.put(key, value)
            for entry in await client.get_prefix(f"{prefix}/{POOL}/".encode(), keys_only=True):
                if entry.key not in wanted:
                    await client.delete(entry.key)
        finally:
            await client.close()


class EtcdSource:
    kind = "etcd"
    weights = True
    prefix = "/test/discovery"

    def __init__(self, workdir: Path) -> None:
        self.server = EtcdServer(workdir)

    async def start(self) -> None:
        self.server.start()

    def provider(self, name: str) -> dict:
        return {
            "type": "etcd",
            "name": name,
            "endpoints": [self.server.endpoint],
            "prefix": self.prefix,
            "timeout": 1.0,
            "retry": RETRY,
        }

    async def publish(self, pool: dict[str, int]) -> None:
        await self.server.publish(self.prefix, pool)

    async def go_away(self) -> None:
        self.server.stop()

    async def come_back(self, pool: dict[str, int]) -> None:
        self.server.start()
        await self.publish(pool)

    async def stop(self) -> None:
        self.server.stop()


class FailingConsul(FakeConsul):
    """The fake Consul, which can also answer 500 as an agent that lost its servers does."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    async def health(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.json_response({"error": "No cluster leader"}, status=500)
        return await super().health(request)

    async def fail(self, failing: bool) -> None:
        async with self.changed:
            self.failing = failing
            self.index += 1  # held queries answer now, with the error
            self.changed.notify_all()


class ConsulSource:
    kind = "consul"
    weights = True  # from each instance's Meta.weight

    def __init__(self, workdir: Path) -> None:
        self.consul = FailingConsul()

    async def start(self) -> None:
        await self.consul.start()

    def provider(self, name: str) -> dict:
        return {
            "type": "consul",
            "name": name,
            "address": self.consul.url,
            "wait": 2,
            "retry": RETRY,
            "pools": {POOL: {"service": "web"}},
        }

    async def publish(self, pool: dict[str, int]) -> None:
        entries = [
            instance(port_of(address), meta={"weight": str(weight)})
            for address, weight in pool.items()
        ]
        await self.consul.set("web", entries)

    async def go_away(self) -> None:
        await self.consul.fail(True)

    async def come_back(self, pool: dict[str, int]) -> None:
        await self.publish(pool)
        await self.consul.fail(False)

    async def stop(self) -> None:
        await self.consul.stop()


class FailingApiServer(FakeApiServer):
    """The fake API server, which can also answer 503 and end its watch streams."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    async def endpointslices(self, request: web.Request) -> web.StreamResponse:
        if self.failing:
            return web.json_response({"kind": "Status", "code": 503}, status=503)
        return await super().endpointslices(request)

    def fail(self, failing: bool) -> None:
        self.failing = failing
        if failing:
            for queue in self.streams:
                queue.put_nowait(None)


class KubernetesSource:
    """One EndpointSlice per endpoint (each upstream process has its own port). Kubernetes
    has no per-endpoint weight: every endpoint weighs 1."""

    kind = "kubernetes"
    weights = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.api = FailingApiServer()

    async def start(self) -> None:
        await self.api.start()

    def provider(self, name: str) -> dict:
        return {
            "type": "kubernetes",
            "name": name,
            "kubeconfig": str(kubeconfig(self.workdir, self.api.url)),
            "watch_timeout": 10,
            "retry": RETRY,
            "pools": {POOL: {"service": "web", "port": "http"}},
        }

    async def publish(self, pool: dict[str, int]) -> None:
        wanted = {f"web-{port_of(address)}": port_of(address) for address in pool}
        for name, port in wanted.items():
            if name not in self.api.slices:
                self.api.apply(endpoint_slice(name, {HOST: True}, {"http": port}))
        for name in [name for name in self.api.slices if name not in wanted]:
            self.api.delete(name)

    async def go_away(self) -> None:
        self.api.fail(True)

    async def come_back(self, pool: dict[str, int]) -> None:
        await self.publish(pool)
        self.api.fail(False)

    async def stop(self) -> None:
        self.api.fail(True)
        await asyncio.sleep(0)
        await self.api.stop()


SOURCES = {
    "file": FileSource,
    "dns": DnsSource,
    "etcd": EtcdSource,
    "consul": ConsulSource,
    "kubernetes": KubernetesSource,
}
NEEDS = {"dns": Path(DNSMASQ), "etcd": Path(ETCD)}
