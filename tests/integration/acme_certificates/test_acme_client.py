"""The ACME client against a real pebble: an order made but never recorded is found again,
and an unreachable or untrusted server is an error that says what to fix."""

from __future__ import annotations

import pytest
from support import free_ports

from dispa.cluster import acme_client
from dispa.cluster.acme_client import AcmeFailure, AcmeServer

from .conftest import needs_pebble

pytestmark = needs_pebble


def test_an_unrecorded_order_is_found_again(make_pebble):
    pebble = make_pebble()
    key = acme_client.new_account_key()
    server = AcmeServer(pebble.directory, key, None, str(pebble.ca_bundle))
    account = server.register("ops@acme.test")
    # The same key registered again (a new leader) finds the same account.
    again = AcmeServer(pebble.directory, key, None, str(pebble.ca_bundle))
    assert again.register("ops@acme.test") == account

    domains = ["lost.acme.test"]
    csr = acme_client.certificate_request(acme_client.new_certificate_key(), domains)
    made = server.new_order(csr)
    resumed = AcmeServer(pebble.directory, key, account, str(pebble.ca_bundle))
    assert resumed.find_order(domains, skip=set()) == made
    assert resumed.find_order(domains, skip={made}) is None
    assert resumed.find_order(["other.acme.test"], skip=set()) is None
    order = resumed.order(made)
    assert order["status"] == "pending"
    (authorization,) = order["authorizations"]
    assert authorization["domain"] == "lost.acme.test"
    token = authorization["challenge"]["token"]
    assert resumed.key_authorization(token).startswith(token + ".")


def test_an_untrusted_server_names_the_setting(make_pebble):
    pebble = make_pebble()
    with pytest.raises(AcmeFailure, match=r"TLS to the ACME server failed \(set acme.ca_bundle"):
        AcmeServer(pebble.directory, acme_client.new_account_key(), None, None)


def test_an_unreachable_server_says_so():
    (port,) = free_ports(1)
    directory = f"https://127.0.0.1:{port}/dir"
    with pytest.raises(AcmeFailure, match=f"directory {directory}: cannot reach the ACME server"):
        AcmeServer(directory, acme_client.new_account_key(), None, None)
