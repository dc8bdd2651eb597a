"""The learner thread: bounded drop-oldest queue, and models rebuilt after they raise."""

from __future__ import annotations

import threading
import time

import pytest

from dispa.ai.learner import Learner


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Echo:
    """Returns what it learned, and how many samples this instance has seen."""

    built = 0

    def __init__(self) -> None:
        Echo.built += 1
        self.seen = 0

    def learn(self, sample):
        if sample == "boom":
            raise RuntimeError("model bug")
        self.seen += 1
        return (sample, self.seen)


def test_samples_are_learned_in_order_and_the_latest_verdict_is_published():
    learner = Learner(Echo, queue_size=10)
    learner.ensure_running()
    try:
        for sample in range(5):
            learner.submit(sample)
        wait_for(lambda: learner.processed == 5)
        assert learner.latest == (4, 5)
        assert learner.statistics()["samples_dropped"] == 0
    finally:
        learner.stop()
    assert not learner.statistics()["running"]


def test_a_model_that_raises_is_rebuilt_fresh_and_counted(caplog):
    Echo.built = 0
    learner = Learner(Echo, queue_size=10)
    learner.ensure_running()
    try:
        for sample in (1, 2, "boom", 3, "boom", 4):
            learner.submit(sample)
        wait_for(lambda: learner.processed == 4 and learner.restarts == 2)
        # Fresh after each failure: the last model has seen only sample 4.
        assert learner.latest == (4, 1)
        assert Echo.built == 3
        stats = learner.statistics()
        assert stats["model_restarts"] == 2 and stats["last_error"] == "RuntimeError: model bug"
        assert stats["running"]
    finally:
        learner.stop()
    # One log line for a burst of failures, not one per sample.
    assert caplog.text.count("AI model failed") == 1


def test_a_slow_model_makes_the_queue_drop_its_oldest_samples_never_block_submit():
    release = threading.Event()

    class Slow:
        def learn(self, sample):
            release.wait(5.0)
            return sample

    learner = Learner(Slow, queue_size=3)
    learner.ensure_running()
    try:
        learner.submit(0)
        wait_for(lambda: learner.queued() == 0)  # 0 is being learned, slowly
        started = time.monotonic()
        for sample in range(1, 11):
            learner.submit(sample)
        assert time.monotonic() - started < 0.1
        assert learner.dropped == 7 and learner.queued() == 3
        release.set()
        wait_for(lambda: learner.processed == 4)
        assert learner.latest == 10  # the newest samples survived: 8, 9, 10
    finally:
        release.set()
        learner.stop()


# The thread's death is the point of the test; pytest would report it as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_thread_is_started_again():
    class Fatal:
        def learn(self, sample):
            if sample == "die":
                raise SystemExit  # not an Exception: it ends the thread
            return sample

    learner = Learner(Fatal, queue_size=5)
    learner.ensure_running()
    try:
        learner.submit("die")
        wait_for(lambda: not learner.statistics()["running"])
        learner.ensure_running()
        learner.submit("fine")
        wait_for(lambda: learner.latest == "fine")
        assert learner.thread_restarts == 1
    finally:
        learner.stop()


def test_replacing_the_model_drops_the_old_verdict_and_builds_anew():
    learner = Learner(Echo, queue_size=5)
    learner.ensure_running()
    try:
        learner.submit(1)
        learner.submit(2)
        wait_for(lambda: learner.latest == (2, 2))
        learner.replace_model(Echo)
        assert learner.latest is None
        learner.submit(3)
        wait_for(lambda: learner.latest == (3, 1))
    finally:
        learner.stop()


def test_queue_size_must_be_positive():
    with pytest.raises(ValueError, match="queue_size"):
        Learner(Echo, queue_size=0)
