"""An alarm flag that neither flaps nor fires on one stray point.

The flag turns on once the score has stayed at or above `high` for `on_after` consecutive
points, and off once it has stayed below `low` for `off_after` consecutive points; between
the two thresholds it keeps its state.
"""

from __future__ import annotations

# The default alarm policy, measured in docs/ai.md: one score of 0.9995 or more raises the
# flag (one point is enough: a lone spike lasts one point), six points in a row below 0.9
# lower it. `SENSITIVE_*` (0.99 on two points in a row) finds more labeled anomalies on NAB
# but raises about three times the false alarms.
ALARM_HIGH = 0.9995
ALARM_LOW = 0.9
ALARM_ON_AFTER = 1
ALARM_OFF_AFTER = 6
SENSITIVE_HIGH = 0.99
SENSITIVE_ON_AFTER = 2


class Hysteresis:
    def __init__(
        self,
        high: float = ALARM_HIGH,
        low: float = ALARM_LOW,
        on_after: int = ALARM_ON_AFTER,
        off_after: int = ALARM_OFF_AFTER,
    ) -> None:
        if not low <= high:
            raise ValueError("low must be <= high")
        if on_after < 1 or off_after < 1:
            raise ValueError("on_after and off_after must be >= 1")
        self.high = high
        self.low = low
        self.on_after = on_after
        self.off_after = off_after
        self.on = False
        self._above = 0
        self._below = 0

    def update(self, score: float) -> bool:
        """Feed one score; return the flag after it."""
        self._above = self._above + 1 if score >= self.high else 0
        self._below = self._below + 1 if score < self.low else 0
        if not self.on and self._above >= self.on_after:
            self.on = True
        elif self.on and self._below >= self.off_after:
            self.on = False
        return self.on
