"""The learner: a worker thread that feeds samples to the models, off the event loop.

The event loop only appends a sample to a bounded queue (``submit``, a lock held for one
append) and reads the latest verdict (one attribute). When the models fall behind, the
oldest samples are dropped and counted: the gateway never waits for learning. A model
that raises is thrown away and rebuilt fresh from the next sample (its history is lost,
traffic is not touched), and counted; a worker thread that died is started again by
``ensure_running``, which the sampler calls every interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("dispa.ai")

# A model failing on every sample would log every second: after the first failure, one
# line per this many seconds (the count is in the metrics and at /api/v1/ai).
FAILURE_LOG_INTERVAL = 60.0


class Model(Protocol):
    def learn(self, sample: Any) -> Any: ...


class Learner:
    def __init__(
        self, build_model: Callable[[], Model], queue_size: int, name: str = "dispa-ai-learner"
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.name = name
        self._build_model = build_model
        self._queue: deque = deque(maxlen=queue_size)
        self._wake = threading.Condition()
        self._model: Model | None = None
        self._rebuild = False
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._last_failure_log = -FAILURE_LOG_INTERVAL
        # Read by the event loop; each is written by one side only.
        self.latest: Any = None
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.restarts = 0  # models rebuilt after raising
        self.thread_restarts = 0
        self.last_error: str | None = None
        self.busy_seconds = 0.0

    # ------------------------------------------------------------- event loop side

    def submit(self, sample: Any) -> None:
        """Queue a sample; when the queue is full the oldest waiting one is dropped."""
        with self._wake:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # the deque drops the oldest as this one goes in
            self._queue.append(sample)
            self.submitted += 1
            self._wake.notify()

    def replace_model(self, build_model: Callable[[], Model]) -> None:
        """New settings: the next sample is learned by a fresh model built by this."""
        with self._wake:
            self._build_model = build_model
            self._rebuild = True
            self.latest = None  # the old models' verdict is not the new settings' own

    def ensure_running(self) -> None:
        thread = self._thread
        if self._stopping or (thread is not None and thread.is_alive()):
            return
        if thread is not None:
            self.thread_restarts += 1
            log.error("the AI learner thread had stopped; started it again")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queue_size(self) -> int:
        return self._queue.maxlen

    def queued(self) -> int:
        return len(self._queue)

    def statistics(self) -> dict:
        thread = self._thread
        return {
            "running": thread is not None and thread.is_alive(),
            "queue_size": self._queue.maxlen,
            "queued": len(self._queue),
            "samples_submitted": self.submitted,
            "samples_dropped": self.dropped,
            "samples_learned": self.processed,
            "model_restarts": self.restarts,
            "thread_restarts": self.thread_restarts,
            "last_error": self.last_error,
            "busy_seconds": round(self.busy_seconds, 3),
        }

    # ------------------------------------------------------------- worker thread side

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                sample = self._queue.popleft()
                if self._rebuild:
                    self._model, self._rebuild = None, False
                build_model = self._build_model
            self._learn(sample, build_model)

    def _learn(self, sample: Any, build_model: Callable[[], Model]) -> None:
        started = time.monotonic()
        try:
            if self._model is None:
                self._model = build_model()
            self.latest = self._model.learn(sample)
            self.processed += 1
        except Exception as error:  # a model bug must not end learning, nor reach traffic
            self._model = None
            self.restarts += 1
            self.last_error = f"{type(error).__name__}: {error}"
            now = time.monotonic()
            if now - self._last_failure_log >= FAILURE_LOG_INTERVAL:
                self._last_failure_log = now
                log.warning(
                    "AI model failed on a sample (%s); it is rebuilt fresh from the next "
                    "sample (%d restart(s) so far; traffic is not affected)",
                    self.last_error,
                    self.restarts,
                )
        finally:
            self.busy_seconds += time.monotonic() - started
