"""Passive outlier detection: eject an endpoint that keeps failing real requests.

The rules follow Envoy's consecutive-error detectors:

- ``consecutive_5xx`` 5xx answers in a row, or ``consecutive_failures`` connect failures
  or resets in a row, eject the endpoint (0 turns a trigger off). A success resets both
  runs; a 5xx resets the failure run, since the endpoint did accept the connection.
- An ejection lasts ``base_ejection * times_ejected``, capped at ``max_ejection``, so an
  endpoint that keeps coming back broken stays out longer each time.
- ``times_ejected`` drops by one for every ``base_ejection`` the endpoint spends back in
  service without being ejected again, so an old incident is forgiven.
- No ejection may take the ejected share of the pool above ``max_ejected_percent``.
  Like Envoy's default (``always_eject_one_host`` off), this holds even for the first
  ejection: with 0 % nothing is ever ejected, and a pool of one endpoint under a 50 % cap
  never ejects it, which is what we want, because ejecting the last endpoint only turns
  slow errors into certain ones.

Everything is a pure function of the calls made and the ``now`` passed in (monotonic
seconds); the upstream applies the verdicts (rebuilding its balancer on ejection and on
``release_due``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from dispa.config.schema import Outlier
from dispa.proxy.upstream.endpoint import Endpoint


class _Record:
    """What the detector knows about one endpoint."""

    __slots__ = (
        "consecutive_5xx",
        "consecutive_failures",
        "ejected_until",
        "ejections_total",
        "release_reported",
        "times_ejected",
    )

    def __init__(self) -> None:
        self.consecutive_5xx = 0
        self.consecutive_failures = 0
        # Backoff multiplier as of the end of the last ejection; see _times_ejected_at.
        self.times_ejected = 0
        self.ejections_total = 0
        self.ejected_until = -math.inf
        # Whether release_due has already handed out the end of the last ejection.
        self.release_reported = True


class OutlierDetector:
    def __init__(self, config: Outlier) -> None:
        self.config = config
        self._records: dict[Endpoint, _Record] = {}

    def set_pool(self, endpoints: Iterable[Endpoint]) -> None:
        """Make ``endpoints`` the pool: its size sets the ejection cap.

        Endpoints that stay (the same objects) keep their history; removed ones are
        forgotten. Results reported for an endpoint outside the pool are ignored, because
        a request may finish after a reload has removed its endpoint.
        """
        self._records = {
            endpoint: self._records.get(endpoint) or _Record() for endpoint in endpoints
        }

    # ------------------------------------------------------------ results of requests

    def record_success(self, endpoint: Endpoint, now: float) -> None:
        record = self._counting_record(endpoint, now)
        if record is not None:
            record.consecutive_5xx = 0
            record.consecutive_failures = 0

    def record_5xx(self, endpoint: Endpoint, now: float) -> bool:
        """Count a 5xx answer; True when this call ejected the endpoint."""
        record = self._counting_record(endpoint, now)
        if record is None:
            return False
        record.consecutive_failures = 0
        record.consecutive_5xx += 1
        threshold = self.config.consecutive_5xx
        return bool(threshold) and record.consecutive_5xx >= threshold and self._eject(record, now)

    def record_failure(self, endpoint: Endpoint, now: float) -> bool:
        """Count a connect failure or reset; True when this call ejected the endpoint."""
        record = self._counting_record(endpoint, now)
        if record is None:
            return False
        record.consecutive_failures += 1
        threshold = self.config.consecutive_failures
        return (
            bool(threshold)
            and record.consecutive_failures >= threshold
            and self._eject(record, now)
        )

    # ------------------------------------------------------------ queries

    def is_ejected(self, endpoint: Endpoint, now: float) -> bool:
        record = self._records.get(endpoint)
        return record is not None and now < record.ejected_until

    def release_due(self, now: float) -> list[Endpoint]:
        """Endpoints whose ejection has ended since the last call, each reported once."""
        released = []
        for endpoint, record in self._records.items():
            if not record.release_reported and now >= record.ejected_until:
                record.release_reported = True
                released.append(endpoint)
        return released

    def statistics(self, now: float) -> dict[str, dict[str, object]]:
        report: dict[str, dict[str, object]] = {}
        for endpoint, record in self._records.items():
            ejected = now < record.ejected_until
            report[endpoint.address] = {
                "ejected": ejected,
                "ejections_total": record.ejections_total,
                "times_ejected": self._times_ejected_at(record, now),
                "consecutive_5xx": record.consecutive_5xx,
                "consecutive_failures": record.consecutive_failures,
                "ejected_until": record.ejected_until if ejected else None,
            }
        return report

    # ------------------------------------------------------------ rules

    def _counting_record(self, endpoint: Endpoint, now: float) -> _Record | None:
        # Results that arrive while the endpoint is ejected come from requests sent before
        # the ejection; they say nothing new, and the runs start afresh when it ends.
        record = self._records.get(endpoint)
        if record is None or now < record.ejected_until:
            return None
        return record

    def _eject(self, record: _Record, now: float) -> bool:
        # Counters stay at the threshold when the cap refuses, so the next error retries
        # the ejection as soon as another endpoint has come back.
        if not self._ejection_fits(now):
            return False
        base, cap = self.config.base_ejection, self.config.max_ejection
        times = self._times_ejected_at(record, now)
        # Stop growing once the cap is reached, so decay back to zero stays quick.
        if base * times < cap:
            times += 1
        record.times_ejected = times
        record.ejected_until = now + min(base * times, cap)
        record.ejections_total += 1
        record.release_reported = False
        record.consecutive_5xx = 0
        record.consecutive_failures = 0
        return True

    def _ejection_fits(self, now: float) -> bool:
        ejected = sum(1 for record in self._records.values() if now < record.ejected_until)
        # Integer form of (ejected + 1) / pool <= max_ejected_percent / 100.
        return 100 * (ejected + 1) <= self.config.max_ejected_percent * len(self._records)

    def _times_ejected_at(self, record: _Record, now: float) -> int:
        """The backoff multiplier after forgiving one step per base_ejection in service."""
        base = self.config.base_ejection
        if record.times_ejected == 0 or now < record.ejected_until or base <= 0:
            return record.times_ejected
        periods_in_service = int((now - record.ejected_until) // base)
        return max(0, record.times_ejected - periods_in_service)
