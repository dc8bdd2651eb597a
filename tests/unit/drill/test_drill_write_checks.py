"""The write-history checkers, fed crafted histories that must pass and must fail."""

from __future__ import annotations

from chaos.checks.writes import (
    check_durable,
    check_edges_converged,
    check_linearizable,
    check_no_fork,
)
from chaos.writers import WriteOp


def op(op_id, invoke, complete, result="ok", revision=None, writer=0):
    return WriteOp(op_id, writer, "core-eu", invoke, complete, result, revision)


SEQUENTIAL = [op("w0-0", 1.0, 1.1, revision=2), op("w0-1", 1.2, 1.3, revision=3)]
HISTORY = {1: "initial", 2: "w0-0", 3: "w0-1"}


def test_a_clean_history_passes_every_check():
    histories = {"core-eu": HISTORY, "core-us": dict(HISTORY), "core-ap": dict(HISTORY)}
    durable = check_durable(SEQUENTIAL, histories)
    assert durable.passed and durable.numbers == {"acknowledged": 2, "missing": 0, "cores": 3}
    assert check_no_fork(histories).passed
    linear = check_linearizable(SEQUENTIAL, HISTORY)
    assert linear.passed and linear.numbers["violations"] == 0


def test_an_acknowledged_write_missing_on_one_core_is_not_durable():
    histories = {"core-eu": HISTORY, "core-us": {1: "initial", 2: "w0-0"}}
    verdict = check_durable(SEQUENTIAL, histories)
    assert not verdict.passed
    assert verdict.numbers["missing"] == 1
    assert "core-us holds None" in verdict.problems[0]


def test_two_configs_under_one_revision_is_a_fork():
    histories = {"core-eu": HISTORY, "core-us": {1: "initial", 2: "w0-0", 3: "w1-0"}}
    verdict = check_no_fork(histories)
    assert not verdict.passed
    assert verdict.numbers["forks"] == 1
    assert "revision 3 forked" in verdict.problems[0]


def test_a_gap_in_a_history_is_reported():
    verdict = check_no_fork({"core-eu": {1: "initial", 3: "w0-1"}})
    assert not verdict.passed
    assert "skips revisions [2]" in verdict.problems[0]


def test_revision_order_against_real_time_is_not_linearizable():
    # w0-0 finished (at 1.1) before w1-0 started (at 2.0), yet got the higher revision.
    ops = [op("w0-0", 1.0, 1.1, revision=3), op("w1-0", 2.0, 2.1, revision=2, writer=1)]
    verdict = check_linearizable(ops, {1: "initial", 2: "w1-0", 3: "w0-0"})
    assert not verdict.passed
    assert "completed at 1.100 s, before w1-0" in verdict.problems[0]


def test_overlapping_writes_may_commit_in_either_order():
    ops = [op("w0-0", 1.0, 2.0, revision=3), op("w1-0", 1.5, 1.8, revision=2, writer=1)]
    assert check_linearizable(ops, {1: "initial", 2: "w1-0", 3: "w0-0"}).passed


def test_a_failed_write_that_took_effect_is_a_violation():
    ops = [op("w0-0", 1.0, 1.1, result="failed")]
    verdict = check_linearizable(ops, {1: "initial", 2: "w0-0"})
    assert not verdict.passed
    assert "failed" in verdict.problems[0]


def test_an_unknown_write_may_take_effect_once_at_any_later_time():
    ops = [op("w0-0", 1.0, 6.0, result="unknown"), op("w1-0", 7.0, 7.1, revision=3, writer=1)]
    verdict = check_linearizable(ops, {1: "initial", 2: "w0-0", 3: "w1-0"})
    assert verdict.passed
    assert verdict.numbers["unknown_applied"] == 1


def test_a_write_applied_twice_or_never_sent_is_a_violation():
    twice = check_linearizable([op("w0-0", 1, 2, revision=2)], {2: "w0-0", 3: "w0-0"})
    assert not twice.passed and "applied twice" in twice.problems[0]
    stranger = check_linearizable([], {2: "w9-9"})
    assert not stranger.passed and "no writer sent" in stranger.problems[0]


def test_an_acknowledged_write_at_the_wrong_revision_is_a_violation():
    verdict = check_linearizable([op("w0-0", 1, 2, revision=5)], {2: "w0-0"})
    assert not verdict.passed
    assert "acknowledged as 5 but is 2" in verdict.problems[0]


def test_edges_must_serve_the_final_revision():
    good = {"edge-eu": {"revision": 7, "marker": "w1-3"}}
    assert check_edges_converged(good, 7, "w1-3").passed
    behind = {**good, "edge-us": {"revision": 5, "marker": "w0-2"}}
    verdict = check_edges_converged(behind, 7, "w1-3")
    assert not verdict.passed
    assert verdict.numbers["behind"] == 1
    assert "edge-us serves revision 5" in verdict.problems[0]
