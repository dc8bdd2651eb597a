"""The replicated ACME state: one order at a time, stale steps refused, progress kept in
snapshots, and ``seq`` moving whenever what nodes serve changes."""

from __future__ import annotations

from dispa.cluster.acme_state import RETRY_FIRST, RETRY_MAX, AcmeState, retry_delay
from dispa.cluster.state import ClusterState

ANSWER = {"tok": {"domain": "a.example.com", "answer": "tok.thumb"}}
ISSUED = {"chain": "CHAIN", "not_before": 100.0, "not_after": 1000.0, "serial": "ab"}


def started(state: AcmeState, order_id: str = "o1") -> dict:
    return state.apply(
        "start_order",
        {
            "order_id": order_id,
            "domains": ["a.example.com"],
            "key": "KEY",
            "csr": "CSR",
            "node": "core-1",
            "now": 10.0,
        },
    )


def test_the_first_account_key_of_a_directory_wins():
    state = AcmeState()
    assert state.apply("set_account", {"directory": "https://d", "key": "K1", "now": 1.0})["ok"]
    second = state.apply("set_account", {"directory": "https://d", "key": "K2", "now": 2.0})
    assert second["unchanged"] and second["account"]["key"] == "K1"
    assert state.apply("account_registered", {"directory": "https://d", "url": "https://d/a/1"})[
        "ok"
    ]
    assert state.account["url"] == "https://d/a/1"
    refused = state.apply("account_registered", {"directory": "https://other", "url": "x"})
    assert not refused["ok"]


def test_one_order_at_a_time_and_stale_steps_are_refused():
    state = AcmeState()
    assert started(state)["ok"]
    again = started(state, "o2")
    assert again == {"ok": False, "error": "an order is in progress", "order": "o1"}
    args = {"url": "https://d/order/1", "challenges": ANSWER, "node": "core-1", "now": 11.0}
    assert not state.apply("order_created", {"order_id": "o2", **args})["ok"]
    assert state.apply("order_created", {"order_id": "o1", **args}) == {"ok": True, "seq": 1}
    other_url = {**args, "url": "https://d/order/2"}
    assert not state.apply("order_created", {"order_id": "o1", **other_url})["ok"]
    assert state.served()["challenges"] == ANSWER


def test_an_issued_certificate_is_served_and_the_order_ends():
    state = AcmeState()
    started(state)
    state.apply(
        "order_created",
        {"order_id": "o1", "url": "https://d/o/1", "challenges": ANSWER, "node": "c1", "now": 11},
    )
    state.apply("order_step", {"order_id": "o1", "status": "answered", "node": "c2", "now": 12})
    done = state.apply(
        "finish_order",
        {"order_id": "o1", "outcome": {"certificate": ISSUED}, "node": "c2", "now": 13.0},
    )
    assert done == {"ok": True, "seq": 2}
    assert state.order is None
    served = state.served()
    assert served["challenges"] == {}
    assert served["certificate"]["chain"] == "CHAIN" and served["certificate"]["key"] == "KEY"
    (entry,) = state.history
    assert entry["outcome"] == "issued"
    assert (entry["created_by"], entry["finished_by"]) == ("core-1", "c2")
    assert [step[1] for step in entry["steps"]] == ["creating", "pending", "answered"]


def test_a_failed_order_backs_off_longer_each_time():
    state = AcmeState()
    for attempt in range(3):
        started(state, f"o{attempt}")
        state.apply(
            "finish_order",
            {"order_id": f"o{attempt}", "outcome": {"error": "nope"}, "node": "c", "now": 100.0},
        )
    assert state.failures == 3
    assert state.retry_at == 100.0 + 4 * RETRY_FIRST
    assert state.history[-1]["error"] == "nope"
    assert retry_delay(1) == RETRY_FIRST and retry_delay(100) == RETRY_MAX


def test_unknown_commands_and_bad_arguments_are_refused_not_raised():
    state = AcmeState()
    assert not state.apply("drop_everything", {})["ok"]
    assert not state.apply("set_account", {"directory": "x"})["ok"]
    assert not state.apply("set_account", ["not", "a", "dict"])["ok"]


def test_progress_survives_a_snapshot_of_the_cluster_state():
    cluster = ClusterState()
    started(cluster.acme)
    plain = cluster.to_plain()
    restored = ClusterState.from_plain(plain)
    assert restored.acme.order["id"] == "o1"
    assert restored.acme.to_plain() == cluster.acme.to_plain()
    # A snapshot from before ACME existed loads with no ACME state.
    del plain["acme"]
    assert ClusterState.from_plain(plain).acme.order is None
