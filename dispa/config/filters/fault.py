"""Config of the ``fault`` filter: injected delays and aborts, for resilience testing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dispa.config.filters import filter_config
from dispa.config.strict import Strict
from dispa.config.units import Duration

# A delay longer than this is a typo (a missing "ms"), not a test: the exchange's own
# timers would end the request long before.
MAX_DELAY_SECONDS = 3600.0


@filter_config
class FaultFilter(Strict):
    """Injects faults to test how clients and the rest of a system cope, like Envoy's fault
    filter: delays a share of requests before they go upstream, and answers a share at once
    with an error status (reason `fault_abort`). A delayed request still counts against the
    route's timeouts. Set `delay`, `abort_status` or both; an aborted request is not
    delayed."""

    type: Literal["fault"]
    delay: Duration | None = Field(
        None,
        le=MAX_DELAY_SECONDS,
        description="How long to hold a delayed request before it goes on (`50ms`, `2s`; at "
        "most 1h). `0s` holds it for one turn of the event loop. Not set: no delays.",
    )
    delay_percent: float = Field(
        100.0,
        ge=0,
        le=100,
        description="Share of requests delayed, in percent (0 to 100); each request is "
        "drawn at random.",
    )
    abort_status: int | None = Field(
        None,
        ge=200,
        le=599,
        description="The status an aborted request is answered with (200 to 599), with "
        "reason `fault_abort`; it never reaches the upstream. Not set: no aborts.",
    )
    abort_percent: float = Field(
        100.0,
        ge=0,
        le=100,
        description="Share of requests aborted, in percent (0 to 100); each request is "
        "drawn at random.",
    )

    @model_validator(mode="after")
    def _does_something(self) -> FaultFilter:
        if self.delay is None and self.abort_status is None:
            raise ValueError("a fault filter needs `delay`, `abort_status` or both")
        return self
