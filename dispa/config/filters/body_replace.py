"""Config of the ``body_replace`` filter: literal find and replace on bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dispa.config.filters import filter_config
from dispa.config.strict import Strict
from dispa.config.units import Size

MIN_BODY = 1024
MAX_BODY = 64 * 1024 * 1024


class Replacement(Strict):
    """One literal replacement: every occurrence of `find` becomes `replace`."""

    find: str = Field(
        min_length=1, description="The text to look for, matched literally (not a pattern)."
    )
    replace: str = Field(description="The text put in its place; empty deletes it.")


@filter_config
class BodyReplaceFilter(Strict):
    """Literal find and replace on request and response bodies, like nginx's `sub_filter`.
    The body is buffered whole (up to `max_body`; a larger one is refused with 413
    `body_too_large`), each replacement applied in order to the UTF-8 bytes, and a changed
    body sent with a new Content-Length. Bodies over 64 KiB are replaced on the
    `filters_executor` threads. A compressed body is not decoded: it will not match."""

    type: Literal["body_replace"]
    request: tuple[Replacement, ...] = Field(
        (), description="Replacements made in the request body sent upstream, in order."
    )
    response: tuple[Replacement, ...] = Field(
        (), description="Replacements made in the response body sent to the client, in order."
    )
    max_body: Size = Field(
        1024 * 1024,
        ge=MIN_BODY,
        le=MAX_BODY,
        description="The largest body this filter buffers (1KiB to 64MiB). A larger one is "
        "answered 413 `body_too_large` before any of it reaches the other side.",
    )

    @model_validator(mode="after")
    def _replaces_something(self) -> BodyReplaceFilter:
        if not self.request and not self.response:
            raise ValueError("a body_replace filter needs `request` or `response` replacements")
        return self
