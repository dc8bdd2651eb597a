"""A 3-core cluster obtains a certificate from a real ACME server (pebble) and every core
and an edge serve it; a leader killed mid-order leaves its order to the next leader.

pebble asks a different node for each name (dnsmasq points each name at one node's
loopback address), so the HTTP-01 answers are served by nodes that did not order.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import yaml
from cluster.conftest import probe_config
from edge.conftest import EdgeProcess
from support import free_ports, wait_until

from .conftest import acme_listeners, needs_pebble

pytestmark = needs_pebble

ISSUE_TIMEOUT = 60.0


def certificates(node) -> dict:
    reply = node.call("GET", "/api/v1/certificates")
    assert reply.status == 200, reply
    return reply.body


def served_serial(address: str, server_name: str, root: Path) -> str:
    """The serial (hex) of the certificate a TLS client verifies against ``root``."""
    context = ssl.create_default_context(cafile=str(root))
    host, _, port = address.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=3.0) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    return f"{x509.load_der_x509_certificate(der).serial_number:x}"


def wait_issued(node, timeout: float = ISSUE_TIMEOUT) -> dict:
    def issued():
        status = certificates(node)
        return status if status["certificate"] is not None else None

    return wait_until(issued, timeout=timeout, interval=0.2, what="a certificate from pebble")


def put_acme_config(core, acme: dict) -> None:
    config = {**probe_config("acme"), "acme": acme}
    reply = core.put_config(config)
    assert reply.status == 200, reply


def test_three_cores_and_an_edge_serve_the_certificate(make_pebble, make_acme_cluster, tmp_path):
    pebble = make_pebble()
    cluster = make_acme_cluster(pebble)
    edge = EdgeProcess(
        "edge-a", "eu", tmp_path / "edge", [core.admin_address for core in cluster.cores]
    )
    (edge_https_port,) = free_ports(1)
    edge_https = f"127.0.0.1:{edge_https_port}"
    edge.config["listeners"] = acme_listeners(f"127.0.0.4:{pebble.http_port}", edge_https_port)
    edge.config_path.write_text(yaml.safe_dump(edge.config, sort_keys=False))
    edge.start()
    try:
        # One name per node: pebble fetches each answer from a different node.
        names = {
            "one.acme.test": "127.0.0.1",
            "two.acme.test": "127.0.0.2",
            "three.acme.test": "127.0.0.3",
            "edge.acme.test": "127.0.0.4",
        }
        pebble.resolve(names)
        leader = cluster.leader()
        put_acme_config(leader, pebble.acme_config(sorted(names)))

        status = wait_issued(leader)
        serial = status["certificate"]["serial"]
        assert sorted(status["certificate"]["domains"]) == sorted(names)
        assert [order["outcome"] for order in status["orders"]] == ["issued"]
        assert status["order"] is None

        root = pebble.issuing_root()
        addresses = [core.https_address for core in cluster.cores] + [edge_https]
        for address in addresses:
            for name in names:
                wait_until(
                    lambda a=address, n=name: served_serial(a, n, root) == serial,
                    timeout=10.0,
                    what=f"{address} serving the certificate for {name}",
                )
        # The edge reports the same certificate, received through the watch stream.
        edge_status = edge.call("GET", "/api/v1/certificates").body
        assert edge_status["certificate"]["serial"] == serial
        # Answers are withdrawn once the order is done.
        assert edge_status["challenges"] == 0
    finally:
        edge.stop()


def test_a_leader_killed_mid_order_leaves_one_order_to_the_next(make_pebble, make_acme_cluster):
    pebble = make_pebble()
    cluster = make_acme_cluster(pebble)
    leader = cluster.leader()
    follower = next(core for core in cluster.cores if core is not leader)
    # The name is answered by a follower, which outlives the leader.
    pebble.resolve({"resume.acme.test": follower.http_address.partition(":")[0]})
    put_acme_config(leader, pebble.acme_config(["resume.acme.test"]))

    def order_made():
        order = certificates(leader)["order"]
        return order if order and order["url"] else None

    order = wait_until(order_made, timeout=ISSUE_TIMEOUT, interval=0.02, what="an order made")
    leader.kill()

    survivor = follower
    status = wait_issued(survivor)
    history = status["orders"]
    assert len(history) == 1, history
    (finished,) = history
    assert finished["outcome"] == "issued"
    assert finished["url"] == order["url"]  # the same order, not a second one
    assert finished["created_by"] == leader.node_id
    assert finished["finished_by"] != leader.node_id
    assert status["certificate"]["order_url"] == order["url"]

    # pebble's side: the account holds exactly one order, and it is valid.
    backup = survivor.get_json("/api/v1/backup")["state"]["acme"]["account"]
    orders = account_orders(pebble, backup["key"], backup["url"])
    assert [o["status"] for o in orders.values()] == ["valid"], orders
    assert list(orders) == [order["url"]]

    root = pebble.issuing_root()
    for core in cluster.alive_cores():
        wait_until(
            lambda c=core: (
                served_serial(c.https_address, "resume.acme.test", root)
                == status["certificate"]["serial"]
            ),
            timeout=10.0,
            what=f"{core.node_id} serving the certificate",
        )


def account_orders(pebble, key_pem: str, account_url: str) -> dict[str, dict]:
    """Every order of the account, as pebble lists them (RFC 8555 7.1.2.1)."""
    import josepy
    from acme import client, messages
    from cryptography.hazmat.primitives import serialization

    key = josepy.JWKRSA(key=serialization.load_pem_private_key(key_pem.encode(), None))
    account = messages.RegistrationResource(body=messages.Registration(), uri=account_url)
    net = client.ClientNetwork(key, account=account, verify_ssl=str(pebble.ca_bundle))
    directory = client.ClientV2.get_directory(pebble.directory, net)
    nonce = directory["newNonce"]
    orders_url = net.post(account_url, None, new_nonce_url=nonce).json()["orders"]
    listed = json.loads(net.post(orders_url, None, new_nonce_url=nonce).text)["orders"]
    return {url: net.post(url, None, new_nonce_url=nonce).json() for url in listed}
