from __future__ import annotations

import pytest

from dispa.ai.hysteresis import Hysteresis


def feed(flag, scores):
    return [flag.update(s) for s in scores]


def test_turns_on_after_n_consecutive_highs_only():
    flag = Hysteresis(high=0.9, low=0.5, on_after=3, off_after=1)
    assert feed(flag, [0.95, 0.95, 0.1, 0.95, 0.95, 0.95]) == [False] * 5 + [True]


def test_stays_on_between_thresholds_and_turns_off_after_m_lows():
    flag = Hysteresis(high=0.9, low=0.5, on_after=1, off_after=2)
    states = feed(flag, [0.95, 0.7, 0.7, 0.4, 0.6, 0.4, 0.4, 0.7])
    assert states == [True, True, True, True, True, True, False, False]


def test_a_score_at_the_high_threshold_counts_as_high():
    assert Hysteresis(high=0.9, low=0.5, on_after=1, off_after=1).update(0.9) is True


def test_rejects_inconsistent_settings():
    with pytest.raises(ValueError):
        Hysteresis(high=0.5, low=0.9)
    with pytest.raises(ValueError):
        Hysteresis(high=0.9, low=0.5, on_after=0)
