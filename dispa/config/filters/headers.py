"""Config of the ``headers`` filter: add and remove request and response headers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dispa.config.filters import filter_config
from dispa.config.strict import Strict


@filter_config
class HeadersFilter(Strict):
    """Adds and removes request and response headers. An added header replaces one of the
    same name, so a value is never doubled."""

    type: Literal["headers"]
    request_add: dict[str, str] = Field(
        {},
        description="Headers set on the request sent upstream; a header of the same name from "
        "the client is replaced.",
    )
    request_remove: tuple[str, ...] = Field(
        (), description="Headers removed from the request sent upstream."
    )
    response_add: dict[str, str] = Field(
        {},
        description="Headers set on the response to the client; one of the same name from "
        "the upstream is replaced.",
    )
    response_remove: tuple[str, ...] = Field(
        (), description="Headers removed from the response to the client."
    )
