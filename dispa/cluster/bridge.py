"""From asyncio to pysyncobj's thread and back.

A replicated command is submitted with a callback; pysyncobj calls it from its own thread
when the command is committed (or failed), and the callback hands the result to the
event loop with ``call_soon_threadsafe``. The asyncio side always waits with a timeout:
nothing here blocks the loop, and a lost answer becomes a clear "unknown outcome".
"""

from __future__ import annotations

import asyncio

from pysyncobj import FAIL_REASON

FAILURES = {
    FAIL_REASON.QUEUE_FULL: "the command queue is full",
    FAIL_REASON.MISSING_LEADER: "no leader (an election is in progress or there is no quorum)",
    FAIL_REASON.DISCARDED: "discarded by a new leader",
    FAIL_REASON.NOT_LEADER: "this node stopped being the leader before the commit",
    FAIL_REASON.LEADER_CHANGED: "the leader changed before the commit",
    FAIL_REASON.REQUEST_DENIED: "denied",
    FAIL_REASON.UNKNOWN_OUTCOME: "unknown outcome",
}


class CommandFailed(Exception):
    """The command was not committed, or we could not learn whether it was."""

    def __init__(self, reason: str, maybe_committed: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        # True when the command may still be applied (timeout, leader change): callers
        # must not assume it was lost, and must not blindly resubmit non-idempotent work.
        self.maybe_committed = maybe_committed


# While an election is on, pysyncobj refuses a command at once (MISSING_LEADER) without
# taking it: it is asked again this often, within the caller's timeout.
NO_LEADER_RETRY = 0.1


async def submit(command, *args, timeout: float = 3.0):
    """Run a ``@replicated`` method and wait for its committed result. A command refused
    because there is no leader was never taken, so it is asked again until a leader is
    elected or the time is up (an election on a loaded machine takes a second or so)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await _submit_once(command, args, max(deadline - loop.time(), 0.01))
        except _NoLeader:
            if loop.time() + NO_LEADER_RETRY >= deadline:
                raise CommandFailed(FAILURES[FAIL_REASON.MISSING_LEADER], False) from None
            await asyncio.sleep(NO_LEADER_RETRY)


class _NoLeader(Exception):
    """pysyncobj knew no leader and did not take the command."""


async def _submit_once(command, args: tuple, timeout: float):
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def deliver(result, error) -> None:
        if not future.done():
            if error == FAIL_REASON.SUCCESS:
                future.set_result(result)
            elif error == FAIL_REASON.MISSING_LEADER:
                future.set_exception(_NoLeader())
            else:
                maybe = error in (
                    FAIL_REASON.NOT_LEADER,
                    FAIL_REASON.LEADER_CHANGED,
                    FAIL_REASON.UNKNOWN_OUTCOME,
                )
                future.set_exception(CommandFailed(FAILURES.get(error, str(error)), maybe))

    def on_result(result, error) -> None:  # pysyncobj's thread
        loop.call_soon_threadsafe(deliver, result, error)

    command(*args, callback=on_result)
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise CommandFailed(f"no answer within {timeout:g} s", maybe_committed=True) from None
