"""Submitting a replicated command: a refusal for want of a leader is asked again."""

from __future__ import annotations

import threading

import pytest
from pysyncobj import FAIL_REASON

from dispa.cluster.bridge import CommandFailed, submit


class Command:
    """Stands in for a ``@replicated`` method: answers from another thread, as pysyncobj
    does, with the outcomes given in turn."""

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, *args, callback) -> None:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        threading.Thread(target=callback, args=outcome).start()


async def test_a_command_refused_during_an_election_is_asked_again():
    command = Command(
        (None, FAIL_REASON.MISSING_LEADER),
        (None, FAIL_REASON.MISSING_LEADER),
        ({"ok": True}, FAIL_REASON.SUCCESS),
    )
    assert await submit(command, timeout=3.0) == {"ok": True}
    assert command.calls == 3


async def test_no_leader_for_the_whole_timeout_is_a_clean_refusal():
    command = Command((None, FAIL_REASON.MISSING_LEADER))
    with pytest.raises(CommandFailed) as failure:
        await submit(command, timeout=0.5)
    assert "no leader" in failure.value.reason
    assert failure.value.maybe_committed is False
    assert 3 <= command.calls <= 6


async def test_other_failures_are_not_retried():
    command = Command((None, FAIL_REASON.LEADER_CHANGED))
    with pytest.raises(CommandFailed) as failure:
        await submit(command, timeout=3.0)
    assert failure.value.maybe_committed is True
    assert command.calls == 1
