"""When a failed try may be retried, and how many retries may run at once.

Retrying is only safe when repeating the request cannot do harm (an idempotent method)
and the body can be sent again. Which failures count is ``retry_on``; by default
(``DEFAULT_RETRY_ON`` in the schema) only those before any answer, a refused connection
or a reset before the response head, as nginx's ``proxy_next_upstream error timeout``:
an upstream's 5xx is its answer, retried only when listed. The budget bounds retries
as a share of the traffic, as Envoy's ``retry_budget`` does, so that an upstream in
trouble is not hit with a storm of retries on top of its normal load (retries would
otherwise multiply load exactly when the upstream can least afford it).
"""

from __future__ import annotations

from dispa.config.schema import Retry

# RFC 9110 section 9.2.2. Methods are case-sensitive, so "get" is not GET.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

_RETRYABLE_STATUSES = {502: "502", 503: "503", 504: "504"}


def retry_condition_for_status(status: int) -> str | None:
    """The retry condition an upstream status stands for, or None if it is not retryable."""
    return _RETRYABLE_STATUSES.get(status)


def may_retry(
    config: Retry, method: str, condition: str, attempt: int, body_replayable: bool
) -> bool:
    """Whether another try is allowed after ``attempt`` tries failed with ``condition``.

    ``attempt`` counts the tries made so far (1 after the first one failed), and
    ``config.attempts`` counts every try, the first one included.
    """
    return (
        attempt < config.attempts
        and method in IDEMPOTENT_METHODS
        and condition in config.retry_on
        and body_replayable
    )


class RetryBudget:
    """Caps concurrent retries at a share of active requests, with a floor for light load.

    The floor (``min_retry_concurrency``) lets a quiet upstream still retry: with three
    requests in flight, 20 % would allow no retry at all.
    """

    __slots__ = ("active_retries", "budget_percent", "min_retry_concurrency", "overflow")

    def __init__(self, budget_percent: float, min_retry_concurrency: int) -> None:
        self.budget_percent = budget_percent
        self.min_retry_concurrency = min_retry_concurrency
        self.active_retries = 0
        # Retries refused because the budget was spent.
        self.overflow = 0

    def try_start_retry(self, active_requests: int) -> bool:
        allowed = max(self.min_retry_concurrency, self.budget_percent / 100 * active_requests)
        if self.active_retries >= allowed:
            self.overflow += 1
            return False
        self.active_retries += 1
        return True

    def finish_retry(self) -> None:
        # Clamped: an unmatched finish must not enlarge the budget for good.
        self.active_retries = max(0, self.active_retries - 1)

    def statistics(self) -> dict[str, float]:
        return {
            "active": self.active_retries,
            "overflow": self.overflow,
            "budget_percent": self.budget_percent,
            "min_retry_concurrency": self.min_retry_concurrency,
        }
