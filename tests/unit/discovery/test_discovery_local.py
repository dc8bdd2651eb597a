"""LocalDiscovery, the ``dispa run`` integration, on real files: what it hands to the
gateway at start, on a change of the source, and on a reload of the config file."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from dispa.config.load import load_text
from dispa.config.schema import Gateway
from dispa.discovery.local import LocalDiscovery


async def eventually(predicate, what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def gateway_config(source: Path, *, lb: str = "round_robin", extra: str = "") -> Gateway:
    return load_text(
        f"""
listeners: [{{name: p, address: "127.0.0.1:0"}}]
regions: [{{name: eu, latitude: 50, longitude: 8}}]
discovery:
  throttle: 0s
  providers:
    - {{type: file, name: files, path: "{source}", interval: 0.05, retry: {{initial: 0.05}}}}
{extra}
upstreams: [{{name: web, discovery: web@files, lb: {lb}}}]
routes: [{{upstream: web}}]
"""
    )


class Applied(list):
    async def __call__(self, config: Gateway, source: str) -> None:
        self.append((source, config))

    def endpoints(self) -> list[str]:
        return [e.address for e in self[-1][1].upstreams[0].endpoints]


def write(path: Path, pool: list) -> None:
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"web": pool}))
    scratch.replace(path)


async def test_start_waits_for_the_first_answer_then_follows_changes_and_reloads(
    tmp_path: Path, caplog
) -> None:
    source = tmp_path / "endpoints.json"
    write(source, ["127.0.0.1:9001"])
    applied = Applied()
    discovery = LocalDiscovery(applied)
    try:
        await discovery.apply_file_config(gateway_config(source), "gateway.yaml")
        # The very first config served already holds the discovered endpoint.
        assert len(applied) == 1 and applied.endpoints() == ["127.0.0.1:9001"]

        write(source, ["127.0.0.1:9001", "127.0.0.1:9002"])
        await eventually(lambda: len(applied.endpoints()) == 2, "the change")
        assert applied[-1][0] == "discovery"

        # A reload of the file keeps the endpoints found so far.
        await discovery.apply_file_config(gateway_config(source, lb="random"), "gateway.yaml")
        assert applied[-1][1].upstreams[0].lb == "random"
        assert applied.endpoints() == ["127.0.0.1:9001", "127.0.0.1:9002"]

        # A view that would not validate (an unknown region) is refused; the config stays.
        count = len(applied)
        write(source, [{"address": "127.0.0.1:9003", "region": "mars"}])
        await eventually(lambda: "unknown region 'mars'" in caplog.text, "the refusal")
        await asyncio.sleep(0.2)
        assert len(applied) == count
        document = discovery.providers_document()
        assert document["role"] == "single"
        assert document["providers"][0]["state"] == "ok"
    finally:
        await discovery.stop()


async def test_providers_stop_when_the_file_no_longer_declares_them(tmp_path: Path) -> None:
    source = tmp_path / "endpoints.json"
    write(source, ["127.0.0.1:9001"])
    applied = Applied()
    discovery = LocalDiscovery(applied)
    await discovery.apply_file_config(gateway_config(source), "gateway.yaml")
    assert discovery.providers.running
    plain = load_text(
        """
listeners: [{name: p, address: "127.0.0.1:0"}]
upstreams: [{name: web, endpoints: [{address: "127.0.0.1:9009"}]}]
routes: [{upstream: web}]
"""
    )
    await discovery.apply_file_config(plain, "gateway.yaml")
    assert not discovery.providers.running
    assert applied.endpoints() == ["127.0.0.1:9009"]
    assert discovery.providers_document() == {"role": "single", "providers": []}


async def test_a_provider_that_cannot_be_built_is_reported_failing(tmp_path: Path, caplog) -> None:
    source = tmp_path / "endpoints.json"
    write(source, ["127.0.0.1:9001"])
    missing = tmp_path / "no-token"
    extra = (
        f"    - {{type: consul, name: consul, token_file: '{missing}', "
        "pools: {web: {service: web}}}"
    )
    applied = Applied()
    discovery = LocalDiscovery(applied)
    try:
        await discovery.apply_file_config(gateway_config(source, extra=extra), "gateway.yaml")
        assert applied.endpoints() == ["127.0.0.1:9001"]  # the other provider still serves
        entries = {e["name"]: e for e in discovery.providers_document()["providers"]}
        assert entries["consul"]["state"] == "failing"
        assert "no-token" in entries["consul"]["last_error"]
        assert "discovery provider consul (consul) cannot start" in caplog.text
    finally:
        await discovery.stop()


async def test_a_silent_source_delays_the_start_only_so_long(monkeypatch, caplog) -> None:
    monkeypatch.setattr("dispa.discovery.local.FIRST_ANSWER_WAIT", 0.05)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a DNS server that never answers
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    applied = Applied()
    discovery = LocalDiscovery(applied)
    config = load_text(
        """
listeners: [{name: p, address: "127.0.0.1:0"}]
discovery:
  providers: [{type: dns, name: dns, server: "127.0.0.1:PORT", timeout: 5s,
                pools: {web: {query: web.test, port: 80}}}]
upstreams: [{name: web, discovery: web@dns}]
routes: [{upstream: web}]
""".replace("PORT", str(port))
    )
    try:
        await discovery.apply_file_config(config, "gateway.yaml")
        assert applied[-1][1].upstreams[0].endpoints == ()  # served empty: 503 until found
        assert "not every provider answered" in caplog.text
    finally:
        await discovery.stop()
        silent.close()
