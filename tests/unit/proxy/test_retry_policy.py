"""Retry rules (which failures may be tried again) and the concurrent-retry budget."""

import pytest

from dispa.config.schema import Retry
from dispa.proxy.retry_policy import (
    IDEMPOTENT_METHODS,
    RetryBudget,
    may_retry,
    retry_condition_for_status,
)


@pytest.mark.parametrize(
    ("status", "condition"),
    [(502, "502"), (503, "503"), (504, "504"), (500, None), (501, None), (200, None), (429, None)],
)
def test_retry_condition_for_status(status, condition):
    assert retry_condition_for_status(status) == condition


def test_idempotent_methods_are_the_rfc_ones():
    assert frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) == IDEMPOTENT_METHODS
    assert "POST" not in IDEMPOTENT_METHODS
    assert "PATCH" not in IDEMPOTENT_METHODS


def test_may_retry_while_tries_remain():
    config = Retry(attempts=3, retry_on=("503",))
    assert may_retry(config, "GET", "503", attempt=1, body_replayable=True)
    assert may_retry(config, "GET", "503", attempt=2, body_replayable=True)
    assert not may_retry(config, "GET", "503", attempt=3, body_replayable=True)


def test_a_single_attempt_means_no_retry():
    assert not may_retry(Retry(attempts=1), "GET", "reset", attempt=1, body_replayable=True)


@pytest.mark.parametrize("method", ["POST", "PATCH", "CONNECT", "get"])
def test_no_retry_for_methods_that_are_not_idempotent(method):
    config = Retry(retry_on=("connect_failure", "reset", "502"))
    assert not may_retry(config, method, "502", attempt=1, body_replayable=True)
    assert not may_retry(config, method, "reset", attempt=1, body_replayable=True)


def test_by_default_only_failures_before_any_answer_are_retried():
    """nginx retries `error timeout` by default and Envoy nothing: a 5xx is the
    upstream's answer, passed on unless retry_on lists it."""
    config = Retry()
    assert config.retry_on == ("connect_failure", "reset")
    assert may_retry(config, "GET", "connect_failure", attempt=1, body_replayable=True)
    assert may_retry(config, "GET", "reset", attempt=1, body_replayable=True)
    for status in ("502", "503", "504"):
        assert not may_retry(config, "GET", status, attempt=1, body_replayable=True)
    assert not may_retry(config, "POST", "reset", attempt=1, body_replayable=True)


def test_statuses_are_retried_when_listed():
    config = Retry(retry_on=[502, "503", 504])
    for status in ("502", "503", "504"):
        assert may_retry(config, "GET", status, attempt=1, body_replayable=True)


def test_no_retry_for_conditions_not_configured():
    config = Retry(retry_on=("connect_failure", "503"))
    assert may_retry(config, "PUT", "connect_failure", attempt=1, body_replayable=True)
    assert may_retry(config, "PUT", "503", attempt=1, body_replayable=True)
    assert not may_retry(config, "PUT", "reset", attempt=1, body_replayable=True)
    assert not may_retry(config, "PUT", "502", attempt=1, body_replayable=True)


def test_no_retry_when_the_body_cannot_be_sent_again():
    assert not may_retry(Retry(), "PUT", "reset", attempt=1, body_replayable=False)


def test_budget_floor_allows_retries_under_light_load():
    budget = RetryBudget(budget_percent=20.0, min_retry_concurrency=2)
    assert budget.try_start_retry(active_requests=1)
    assert budget.try_start_retry(active_requests=1)
    assert not budget.try_start_retry(active_requests=1)
    budget.finish_retry()
    assert budget.try_start_retry(active_requests=1)
    assert budget.statistics()["active"] == 2
    assert budget.statistics()["overflow"] == 1


def test_budget_scales_with_active_requests():
    budget = RetryBudget(budget_percent=20.0, min_retry_concurrency=0)
    # 20 % of 10 requests: two retries at once.
    assert budget.try_start_retry(active_requests=10)
    assert budget.try_start_retry(active_requests=10)
    assert not budget.try_start_retry(active_requests=10)
    # The same two retries fit easily in 20 % of 15 requests (3).
    assert budget.try_start_retry(active_requests=15)
    assert not budget.try_start_retry(active_requests=15)


def test_zero_budget_and_zero_floor_refuse_every_retry():
    budget = RetryBudget(budget_percent=0.0, min_retry_concurrency=0)
    assert not budget.try_start_retry(active_requests=1000)
    assert budget.statistics() == {
        "active": 0,
        "overflow": 1,
        "budget_percent": 0.0,
        "min_retry_concurrency": 0,
    }


def test_unmatched_finish_does_not_enlarge_the_budget():
    budget = RetryBudget(budget_percent=0.0, min_retry_concurrency=1)
    budget.finish_retry()
    assert budget.try_start_retry(active_requests=0)
    assert not budget.try_start_retry(active_requests=0)
