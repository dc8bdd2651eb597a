"""Surrogate keys: the labels an origin puts on a response so it can purge by label.

Both common spellings are read: ``Cache-Tag`` (comma-separated, as at Cloudflare) and
``Surrogate-Key`` (space-separated, as at Fastly); either separator works in either.
"""

from __future__ import annotations

import re

from dispa.edge.cache.fields import AnyHeaders

TAG_FIELDS = (b"cache-tag", b"surrogate-key")
_SEPARATORS = re.compile(rb"[\s,]+")


def tags_of(headers: AnyHeaders) -> tuple[str, ...]:
    """The distinct tags of a response, in the order they first appear."""
    tags: dict[str, None] = {}
    for name, value in headers:
        if name.lower() in TAG_FIELDS:
            for tag in _SEPARATORS.split(value):
                if tag:
                    # Tags are compared as text; undecodable bytes become U+FFFD, not errors.
                    tags.setdefault(tag.decode("utf-8", "replace"), None)
    return tuple(tags)
