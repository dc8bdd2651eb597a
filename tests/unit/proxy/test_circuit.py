"""CircuitBreaker: limits refuse excess work and count each refusal by kind."""

from hypothesis import given
from hypothesis import strategies as st

from dispa.config.schema import Circuit
from dispa.proxy.upstream.circuit import CircuitBreaker


def test_requests_beyond_the_limit_are_refused_and_counted():
    breaker = CircuitBreaker(Circuit(max_requests=2))
    assert breaker.try_start_request()
    assert breaker.try_start_request()
    assert not breaker.try_start_request()
    assert not breaker.try_start_request()
    breaker.finish_request()
    assert breaker.try_start_request()
    assert breaker.statistics()["requests"] == {"active": 2, "limit": 2, "overflow": 2}


def test_connections_count_from_the_start_of_the_dial():
    breaker = CircuitBreaker(Circuit(max_connections=1))
    assert breaker.can_open_connection()
    breaker.connection_opened()
    assert not breaker.can_open_connection()
    breaker.connection_closed()
    assert breaker.can_open_connection()
    assert breaker.statistics()["connections"] == {"active": 0, "limit": 1, "overflow": 1}


def test_pending_limit_and_zero_means_no_queue():
    breaker = CircuitBreaker(Circuit(max_pending=1))
    assert breaker.try_add_pending()
    assert not breaker.try_add_pending()
    breaker.remove_pending()
    assert breaker.try_add_pending()
    assert breaker.statistics()["pending"] == {"active": 1, "limit": 1, "overflow": 1}

    no_queue = CircuitBreaker(Circuit(max_pending=0))
    assert not no_queue.try_add_pending()
    assert no_queue.statistics()["pending"]["overflow"] == 1


def test_unmatched_releases_do_not_go_negative():
    breaker = CircuitBreaker(Circuit(max_requests=1))
    breaker.finish_request()
    breaker.connection_closed()
    breaker.remove_pending()
    assert breaker.try_start_request()
    assert not breaker.try_start_request()
    stats = breaker.statistics()
    assert stats["connections"]["active"] == 0
    assert stats["pending"]["active"] == 0


def test_kinds_are_independent():
    breaker = CircuitBreaker(Circuit(max_connections=1, max_pending=1, max_requests=1))
    assert breaker.try_start_request()
    assert breaker.try_add_pending()
    assert breaker.can_open_connection()
    breaker.connection_opened()
    assert [kind["overflow"] for kind in breaker.statistics().values()] == [0, 0, 0]


OPERATIONS = st.sampled_from(
    ["start_request", "finish_request", "open", "close", "add_pending", "remove_pending"]
)


@given(
    operations=st.lists(OPERATIONS, max_size=80),
    max_connections=st.integers(1, 4),
    max_pending=st.integers(0, 4),
    max_requests=st.integers(1, 4),
)
def test_counts_stay_within_zero_and_limits(operations, max_connections, max_pending, max_requests):
    breaker = CircuitBreaker(
        Circuit(max_connections=max_connections, max_pending=max_pending, max_requests=max_requests)
    )
    refused = {"connections": 0, "pending": 0, "requests": 0}
    for operation in operations:
        if operation == "start_request":
            refused["requests"] += not breaker.try_start_request()
        elif operation == "finish_request":
            breaker.finish_request()
        elif operation == "open":
            # The protocol callers follow: ask first, count only what was allowed.
            if breaker.can_open_connection():
                breaker.connection_opened()
            else:
                refused["connections"] += 1
        elif operation == "close":
            breaker.connection_closed()
        elif operation == "add_pending":
            refused["pending"] += not breaker.try_add_pending()
        else:
            breaker.remove_pending()
        for kind, stats in breaker.statistics().items():
            assert 0 <= stats["active"] <= stats["limit"], kind
            assert stats["overflow"] == refused[kind], kind
