"""OutlierDetector: Envoy's consecutive-error ejection, with backoff, decay and a cap."""

import pytest

from dispa.config.schema import Outlier
from dispa.proxy.upstream.endpoint import Endpoint
from dispa.proxy.upstream.outlier import OutlierDetector


def endpoints(count: int) -> list[Endpoint]:
    return [Endpoint("api", "10.0.0.1", 8000 + index) for index in range(count)]


def detector_for(pool: list[Endpoint], **settings) -> OutlierDetector:
    settings.setdefault("max_ejected_percent", 100)
    detector = OutlierDetector(Outlier(**settings))
    detector.set_pool(pool)
    return detector


def eject(detector: OutlierDetector, endpoint: Endpoint, now: float) -> bool:
    """Send 5xx until the detector reacts (or a generous bound is hit); True if ejected."""
    return any(detector.record_5xx(endpoint, now) for _ in range(50))


# ---------------------------------------------------------------- triggers


def test_ejects_on_exactly_the_nth_consecutive_5xx():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=3)
    assert [detector.record_5xx(endpoint, 0.0) for _ in range(3)] == [False, False, True]
    assert detector.is_ejected(endpoint, 0.0)


def test_ejects_on_exactly_the_nth_consecutive_failure():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_failures=2)
    assert detector.record_failure(endpoint, 0.0) is False
    assert detector.record_failure(endpoint, 0.0) is True
    assert detector.is_ejected(endpoint, 0.0)


def test_success_resets_both_runs():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=3, consecutive_failures=3)
    for _ in range(10):
        detector.record_5xx(endpoint, 0.0)
        detector.record_failure(endpoint, 0.0)
        detector.record_failure(endpoint, 0.0)
        detector.record_success(endpoint, 0.0)
    assert not detector.is_ejected(endpoint, 0.0)
    stats = detector.statistics(0.0)[endpoint.address]
    assert (stats["consecutive_5xx"], stats["consecutive_failures"]) == (0, 0)


def test_a_5xx_breaks_a_failure_run_but_a_failure_does_not_break_a_5xx_run():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=3, consecutive_failures=2)
    detector.record_failure(endpoint, 0.0)
    detector.record_5xx(endpoint, 0.0)  # the endpoint answered: connecting works
    assert detector.record_failure(endpoint, 0.0) is False
    detector.record_5xx(endpoint, 0.0)
    assert detector.record_5xx(endpoint, 0.0) is True


def test_zero_turns_a_trigger_off():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=0, consecutive_failures=0)
    assert not any(detector.record_5xx(endpoint, 0.0) for _ in range(100))
    assert not any(detector.record_failure(endpoint, 0.0) for _ in range(100))


def test_results_while_ejected_are_ignored_and_runs_restart_after():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=2, base_ejection=10.0)
    assert eject(detector, endpoint, 0.0)
    assert detector.record_5xx(endpoint, 5.0) is False
    assert detector.statistics(5.0)[endpoint.address]["consecutive_5xx"] == 0
    # Back in service at 10: one 5xx is not yet a run of two.
    assert detector.record_5xx(endpoint, 10.0) is False
    assert detector.record_5xx(endpoint, 10.0) is True


# ---------------------------------------------------------------- ejection time


def test_ejection_time_grows_with_each_ejection_up_to_the_cap():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=1, base_ejection=10.0, max_ejection=35.0)
    now, durations = 0.0, []
    for _ in range(5):
        # Re-ejected the moment it comes back, so no decay in between.
        assert detector.record_5xx(endpoint, now)
        until = detector.statistics(now)[endpoint.address]["ejected_until"]
        durations.append(until - now)
        now = until
    assert durations == [10.0, 20.0, 30.0, 35.0, 35.0]


def test_max_ejection_below_base_caps_the_first_ejection():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=1, base_ejection=30.0, max_ejection=5.0)
    detector.record_5xx(endpoint, 100.0)
    assert detector.statistics(100.0)[endpoint.address]["ejected_until"] == 105.0


@pytest.mark.parametrize(
    ("time_in_service", "times_after_decay", "next_duration"),
    [(0.0, 2, 30.0), (9.9, 2, 30.0), (10.0, 1, 20.0), (25.0, 0, 10.0), (1000.0, 0, 10.0)],
)
def test_times_ejected_decays_one_step_per_base_period_in_service(
    time_in_service, times_after_decay, next_duration
):
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=1, base_ejection=10.0, max_ejection=300.0)
    detector.record_5xx(endpoint, 0.0)  # times 1, out until 10
    detector.record_5xx(endpoint, 10.0)  # times 2, out until 30
    back = 30.0 + time_in_service
    assert detector.statistics(back)[endpoint.address]["times_ejected"] == times_after_decay
    assert detector.record_5xx(endpoint, back)
    assert detector.statistics(back)[endpoint.address]["ejected_until"] == back + next_duration


def test_no_decay_while_ejected():
    [endpoint] = pool = endpoints(1)
    detector = detector_for(pool, consecutive_5xx=1, base_ejection=10.0, max_ejection=100.0)
    detector.record_5xx(endpoint, 0.0)
    detector.record_5xx(endpoint, 10.0)  # out for 20 s, longer than one base period
    assert detector.statistics(29.0)[endpoint.address]["times_ejected"] == 2


# ---------------------------------------------------------------- release


def test_release_due_reports_each_end_of_ejection_once():
    first, second = pool = endpoints(2)
    detector = detector_for(pool, consecutive_5xx=1, base_ejection=10.0)
    detector.record_5xx(first, 0.0)
    detector.record_5xx(second, 4.0)
    assert detector.release_due(9.99) == []
    assert detector.is_ejected(first, 9.99)
    assert detector.release_due(10.0) == [first]
    assert not detector.is_ejected(first, 10.0)
    assert detector.release_due(12.0) == []
    assert detector.release_due(100.0) == [second]
    assert detector.release_due(200.0) == []


def test_endpoints_never_ejected_are_never_released():
    detector = detector_for(endpoints(3))
    assert detector.release_due(1e9) == []


# ---------------------------------------------------------------- max_ejected_percent


def test_cap_limits_the_ejected_share_and_frees_up_on_release():
    pool = endpoints(4)
    detector = detector_for(pool, consecutive_5xx=1, base_ejection=10.0, max_ejected_percent=50)
    assert eject(detector, pool[0], 0.0)
    assert eject(detector, pool[1], 1.0)
    # A third would be 75 % of the pool.
    assert not eject(detector, pool[2], 2.0)
    assert not detector.is_ejected(pool[2], 2.0)
    # pool[0] is back at 10; pool[2] is still failing and is ejected on its next error.
    assert detector.record_5xx(pool[2], 10.0)
    assert detector.is_ejected(pool[2], 10.0)


@pytest.mark.parametrize(
    ("pool_size", "percent", "ejectable"),
    [(1, 50, 0), (1, 100, 1), (2, 50, 1), (3, 50, 1), (10, 10, 1), (9, 10, 0), (5, 0, 0)],
)
def test_cap_applies_even_to_the_first_ejection(pool_size, percent, ejectable):
    pool = endpoints(pool_size)
    detector = detector_for(pool, consecutive_5xx=1, max_ejected_percent=percent)
    assert sum(eject(detector, endpoint, 0.0) for endpoint in pool) == ejectable


# ---------------------------------------------------------------- pool membership and reporting


def test_set_pool_keeps_history_of_kept_endpoints_and_forgets_removed_ones():
    kept, removed = pool = endpoints(2)
    detector = detector_for(pool, consecutive_5xx=3)
    detector.record_5xx(kept, 0.0)
    detector.record_5xx(removed, 0.0)
    added = Endpoint("api", "10.0.0.9", 80)
    detector.set_pool([kept, added])
    stats = detector.statistics(0.0)
    assert set(stats) == {kept.address, added.address}
    assert stats[kept.address]["consecutive_5xx"] == 1
    assert stats[added.address]["consecutive_5xx"] == 0


def test_results_for_endpoints_outside_the_pool_are_ignored():
    detector = detector_for(endpoints(2), consecutive_5xx=1)
    stranger = Endpoint("api", "10.0.0.1", 8000)  # same address, different endpoint
    assert detector.record_5xx(stranger, 0.0) is False
    assert detector.record_failure(stranger, 0.0) is False
    detector.record_success(stranger, 0.0)
    assert not detector.is_ejected(stranger, 0.0)


def test_statistics_per_address():
    healthy, ejected = pool = endpoints(2)
    detector = detector_for(pool, consecutive_5xx=2, base_ejection=30.0)
    detector.record_5xx(healthy, 0.0)
    eject(detector, ejected, 0.0)
    assert detector.statistics(1.0) == {
        healthy.address: {
            "ejected": False,
            "ejections_total": 0,
            "times_ejected": 0,
            "consecutive_5xx": 1,
            "consecutive_failures": 0,
            "ejected_until": None,
        },
        ejected.address: {
            "ejected": True,
            "ejections_total": 1,
            "times_ejected": 1,
            "consecutive_5xx": 0,
            "consecutive_failures": 0,
            "ejected_until": 30.0,
        },
    }
    assert detector.statistics(30.0)[ejected.address]["ejected_until"] is None
