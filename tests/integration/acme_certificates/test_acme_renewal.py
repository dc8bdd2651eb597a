"""Renewal: once ``renew_before`` covers the rest of a certificate's life, the leader
orders a new one, and the nodes serve it without a restart.

pebble issues certificates for 30 seconds here; with renew_before 20s a certificate is
due 10 seconds after it starts (a third of its life, the earliest Dispa renews).
"""

from __future__ import annotations

import time

from support import wait_until

from .conftest import needs_pebble
from .test_acme_issuance import certificates, put_acme_config, served_serial, wait_issued

pytestmark = needs_pebble


def test_a_certificate_within_renew_before_of_expiry_is_renewed(make_pebble, make_acme_cluster):
    pebble = make_pebble(validity=30)
    cluster = make_acme_cluster(pebble, count=1)
    (core,) = cluster.cores
    pids = core.popen.pid
    pebble.resolve({"renew.acme.test": "127.0.0.1"})
    put_acme_config(core, pebble.acme_config(["renew.acme.test"], renew_before="20s"))

    first = wait_issued(core)["certificate"]
    root = pebble.issuing_root()

    def renewed():
        status = certificates(core)
        return status if status["certificate"]["serial"] != first["serial"] else None

    status = wait_until(renewed, timeout=40.0, interval=0.2, what="a renewed certificate")
    second = status["certificate"]
    issued = [order for order in status["orders"] if order["outcome"] == "issued"]
    assert len(issued) >= 2
    # Not before it was due: a third of the first certificate's 30 s life.
    assert issued[1]["started"] >= issued[0]["finished"] + 5.0
    wait_until(
        lambda: served_serial(core.https_address, "renew.acme.test", root) == second["serial"],
        timeout=10.0,
        what="the renewed certificate served",
    )
    assert core.popen.pid == pids and core.alive()  # installed without a restart

    metrics = core.call("GET", "/metrics").body.splitlines()
    (expiry,) = [m for m in metrics if m.startswith("dispa_acme_certificate_expiry_timestamp")]
    assert time.time() < float(expiry.split()[1]) <= time.time() + 30
    assert "dispa_acme_order_failures_in_a_row 0.0" in metrics
