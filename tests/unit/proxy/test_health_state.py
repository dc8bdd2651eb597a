"""HealthState: flips need a full run of agreeing observations, and are reported once."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispa.proxy.upstream.health_state import HealthState


def test_goes_down_only_after_unhealthy_threshold_failures_in_a_row():
    state = HealthState(healthy_threshold=2, unhealthy_threshold=3)
    assert [state.observe(False) for _ in range(2)] == [False, False]
    assert state.healthy
    assert state.observe(False) is True
    assert not state.healthy
    # Further failures agree with the state: no second report.
    assert state.observe(False) is False


def test_comes_up_only_after_healthy_threshold_successes_in_a_row():
    state = HealthState(healthy_threshold=2, unhealthy_threshold=1, healthy=False)
    assert state.observe(True) is False
    assert state.observe(True) is True
    assert state.healthy
    assert state.observe(True) is False


def test_an_agreeing_observation_breaks_the_run():
    state = HealthState(healthy_threshold=1, unhealthy_threshold=3)
    for _ in range(5):
        state.observe(False)
        state.observe(False)
        state.observe(True)
    assert state.healthy


def test_threshold_of_one_flips_on_every_disagreement():
    state = HealthState(healthy_threshold=1, unhealthy_threshold=1)
    assert [state.observe(s) for s in (False, False, True, True, False)] == [
        True,
        False,
        True,
        False,
        True,
    ]


def test_rejects_thresholds_below_one():
    with pytest.raises(ValueError):
        HealthState(healthy_threshold=0, unhealthy_threshold=1)


def reference_states(
    observations: list[bool], healthy_threshold: int, unhealthy_threshold: int, healthy: bool
) -> list[bool]:
    """State after each observation: it becomes v once the run of identical observations
    ending here has length threshold(v)."""
    states = []
    for index, value in enumerate(observations):
        run = 0
        while run <= index and observations[index - run] == value:
            run += 1
        needed = healthy_threshold if value else unhealthy_threshold
        if value != healthy and run >= needed:
            healthy = value
        states.append(healthy)
    return states


@given(
    observations=st.lists(st.booleans(), max_size=60),
    healthy_threshold=st.integers(1, 5),
    unhealthy_threshold=st.integers(1, 5),
    initially_healthy=st.booleans(),
)
def test_matches_reference_model(
    observations, healthy_threshold, unhealthy_threshold, initially_healthy
):
    state = HealthState(healthy_threshold, unhealthy_threshold, healthy=initially_healthy)
    expected = reference_states(
        observations, healthy_threshold, unhealthy_threshold, initially_healthy
    )
    before = initially_healthy
    for observation, expected_state in zip(observations, expected, strict=True):
        flipped = state.observe(observation)
        assert state.healthy == expected_state
        assert flipped == (before != expected_state)
        before = expected_state
