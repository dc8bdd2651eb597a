"""A name the CA cannot reach fails the order with the CA's reason, and the next order
waits (a CA rate-limits clients that fail in a loop)."""

from __future__ import annotations

from support import wait_until

from .conftest import needs_pebble
from .test_acme_issuance import certificates, put_acme_config

pytestmark = needs_pebble


def test_an_unreachable_name_fails_the_order_with_the_reason(make_pebble, make_acme_cluster):
    pebble = make_pebble()
    cluster = make_acme_cluster(pebble, count=1)
    (core,) = cluster.cores
    # Nothing listens on 127.0.0.9: pebble's validation is refused.
    pebble.resolve({"nowhere.acme.test": "127.0.0.9"})
    put_acme_config(core, pebble.acme_config(["nowhere.acme.test"]))

    def failed():
        status = certificates(core)
        return status if status["orders"] else None

    status = wait_until(failed, timeout=60.0, interval=0.2, what="the order to fail")
    (order,) = status["orders"]
    assert order["outcome"] == "failed"
    assert order["error"].startswith("nowhere.acme.test: ")
    assert status["certificate"] is None and status["order"] is None
    assert status["failures_in_a_row"] == 1
    assert status["retry_at"] is not None
    wait_until(
        lambda: "retrying after a failed order" in certificates(core)["manager"]["next"]["why"],
        timeout=10.0,
        what="the manager waiting before the next order",
    )
