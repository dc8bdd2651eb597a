"""Availability, failover, rate-limit and stickiness checkers on crafted records."""

from __future__ import annotations

from chaos.checks.availability import check_availability, per_second
from chaos.checks.failover import check_failover
from chaos.checks.rate_limit import allowed_admissions, check_rate_limit
from chaos.checks.sticky import check_sticky
from chaos.load import Request
from chaos.monitor import Sample
from chaos.sticky import StickyRequest
from chaos.writers import WriteOp


def requests(count, failed_at=(), start=0.0, step=0.01):
    return [
        Request(start + i * step, "edge-eu", 502 if i in failed_at else 200, 0.01)
        for i in range(count)
    ]


def test_availability_counts_per_second_and_during_the_fault():
    records = requests(2000)
    assert per_second(records)[3] == (100, 0)
    verdict = check_availability(records, (5.0, 8.0), 0.999)
    assert verdict.passed
    assert verdict.numbers["requests"] == 2000
    # sent from 5.0 s to 13.0 s (8.0 s + the 5 s margin), both ends included
    assert verdict.numbers["during_fault_requests"] == 801


def test_availability_below_target_while_faulted_fails_even_if_overall_is_fine():
    # 3 failures among 2000 is 99.85% overall, but all fall in the fault window.
    records = requests(2000, failed_at=(600, 601, 602))
    verdict = check_availability(records, (5.0, 6.0), 0.999)
    assert not verdict.passed
    assert verdict.numbers["during_fault_ratio"] < 0.999
    assert verdict.problems == ("3 x edge-eu: status 502",)


def samples(*points):
    return [Sample(at, leader, {}) for at, leader in points]


def write(invoke, complete, result="ok"):
    return WriteOp(f"w{invoke}", 0, "core-eu", invoke, complete, result, 2)


def test_failover_measures_time_to_new_leader_and_next_commit():
    verdict = check_failover(
        samples((4.0, "core-us"), (4.2, None), (4.6, "core-eu")),
        [write(4.1, 4.3, "failed"), write(4.5, 4.9)],
        fault_at=4.0,
        leader_before="core-us",
        expect="new",
        heal_at=10.0,
        max_election=5.0,
        max_commit=10.0,
    )
    assert verdict.passed
    assert verdict.numbers["seconds_to_new_leader"] == 0.6
    assert verdict.numbers["seconds_to_next_commit"] == 0.9


def test_failover_fails_without_a_new_leader_or_a_commit():
    verdict = check_failover(
        samples((4.0, "core-us"), (9.0, "core-us")), [], 4.0, "core-us", "new", 10, 5, 10
    )
    assert not verdict.passed
    assert "no new leader" in verdict.problems[0]
    assert "no write sent after the fault was committed" in verdict.problems[1]


def test_failover_with_expect_same_fails_when_the_leader_changes():
    verdict = check_failover(
        samples((5.0, "core-eu")), [write(5, 5.1)], 4.0, "core-us", "same", 10, 5, 10
    )
    assert not verdict.passed
    assert "changed from core-us to core-eu" in verdict.problems[0]


def test_slow_election_exceeds_its_bound():
    verdict = check_failover(
        samples((9.5, "core-eu")), [write(5, 9.6)], 4.0, "core-us", "new", 10, 5, 10
    )
    assert not verdict.passed
    assert "after 5.5 s (bound 5 s)" in verdict.problems[0]


NODES = {"core-eu": 6, "core-us": 6, "edge-eu": 4}


def test_the_bound_adds_one_credit_per_node_and_the_share_of_nodes_in_fallback():
    assert allowed_admissions(100.0, 1.0, 20, NODES, {}) == 23
    assert allowed_admissions(100.0, 1.0, 20, NODES, {"edge-eu": [101.5]}) == 27
    # A fallback seen long before the window does not count for it.
    assert allowed_admissions(100.0, 1.0, 20, NODES, {"edge-eu": [50.0]}) == 23


def test_rate_limit_within_the_bound_passes_and_above_it_fails():
    windows = {("core-eu", 100.0): (12, 30), ("core-us", 100.0): (10, 25)}
    good = check_rate_limit(windows, [], lambda at: at, 20, 1.0, NODES)
    assert good.passed and good.numbers["max_over_limit"] == 2
    windows[("edge-eu", 100.0)] = (5, 1)
    bad = check_rate_limit(windows, [], lambda at: at, 20, 1.0, NODES)
    assert not bad.passed
    assert bad.problems == ("window 100: 27 admitted, bound 23",)
    # The same counts are within the bound when the edge was seen in fallback then.
    forgiven = check_rate_limit(
        windows, [(100.5, "edge-eu", "fallback")], lambda at: at, 20, 1.0, NODES
    )
    assert forgiven.passed and forgiven.numbers["nodes_in_fallback"] == ["edge-eu"]


def test_a_limit_that_never_refused_anything_was_not_exercised():
    verdict = check_rate_limit({("core-eu", 1.0): (5, 0)}, [], lambda at: at, 20, 1.0, NODES)
    assert not verdict.passed
    assert "never reached the limit" in verdict.problems[0]


def sticky(client, at, upstream, status=200):
    return StickyRequest(client, at, "core-eu", status, upstream)


def test_sticky_sessions_keep_their_upstream():
    records = [sticky("c1", t, "up-eu") for t in range(5)] + [sticky("c1", 5, "", status=0)]
    verdict = check_sticky(records, [])
    assert verdict.passed
    assert verdict.numbers["kept"] == 4 and verdict.numbers["moves"] == 0


def test_a_move_without_a_fault_breaks_stickiness_and_one_during_a_fault_does_not():
    records = [sticky("c1", 1, "up-eu"), sticky("c1", 2, "up-us"), sticky("c1", 3, "up-us")]
    broken = check_sticky(records, [])
    assert not broken.passed
    assert "c1 moved from up-eu to up-us at 2.0 s" in broken.problems[0]
    explained = check_sticky(records, [(1.5, 4.0)])
    assert explained.passed and explained.numbers["justified_moves"] == 1
