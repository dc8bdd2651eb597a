"""Bounds on a config document, checked before anything recurses into it.

A config reaches Dispa from a file (``dispa validate``, ``dispa run``), from the admin API
(``PUT /api/v1/config``, a restore) and from the cluster. Without bounds, a document nested
100,000 deep made the YAML composer (or 900 deep, pydantic and the error report) exceed
Python's recursion limit, a 5,000-digit integer made YAML's int() raise, and a few YAML
aliases can stand for billions of values ("billion laughs"): each a traceback, a 500, or a
process busy for ever. Every bound here is answered with the usual problem line, naming
the path of the value that crossed it.

``load_yaml`` reads YAML (and so JSON) with the bounds enforced while composing, before a
deep document can recurse; ``bound_problems`` walks plain data (from JSON, from the
cluster) without recursion. Both count a value reached through an alias each time it is
reached, since that is what validating the data will cost.
"""

from __future__ import annotations

import json

import yaml
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, ScalarNode

from dispa.config.errors import format_path

MAX_TEXT_CHARS = 16 * 1024 * 1024  # a config file or request body, as text
MAX_DEPTH = 64  # nesting of mappings and lists; a real config uses about 8
MAX_VALUES = 250_000  # mappings, lists and scalars, aliases counted each time used
MAX_INTEGER_CHARS = 32  # an integer written with more is refused, before int() reads it
MAX_INTEGER_BITS = 64  # no config number is larger


class BoundExceeded(Exception):
    """A value past one of the bounds: ``problem`` is the line to report."""

    def __init__(self, location: list, what: str) -> None:
        self.problem = f"{format_path(location)}: {what}"
        super().__init__(self.problem)


_INT_TAG = "tag:yaml.org,2002:int"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with the bounds checked as each node is composed."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._location: list = []
        self._values = 0
        self._sizes: dict[str, int] = {}  # anchor -> values under it, once composed
        self._open: set[str] = set()  # anchors of collections still being composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if type(event) is AliasEvent:
            anchor = event.anchor
            if anchor in self._open:
                where = [*self._location, _part(parent, index)]
                raise BoundExceeded(where, "an alias inside the value it names")
            self._count(self._sizes.get(anchor, 0))
            return super().compose_node(parent, index)
        location = self._location
        if parent is not None:
            location.append(_part(parent, index))
            if len(location) > MAX_DEPTH:
                raise BoundExceeded(location, f"nested more than {MAX_DEPTH} levels deep")
        anchor = event.anchor
        collection = type(event) in (SequenceStartEvent, MappingStartEvent)
        if anchor is not None and collection:
            self._open.add(anchor)
        before = self._values
        self._count(1)
        node = super().compose_node(parent, index)
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._values - before
        if node.tag == _INT_TAG and len(node.value) > MAX_INTEGER_CHARS:
            raise BoundExceeded(location, f"an integer of more than {MAX_INTEGER_CHARS} digits")
        if parent is not None:
            location.pop()
        return node

    def _count(self, values: int) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise BoundExceeded(self._location, f"the config holds more than {MAX_VALUES} values")


def _part(parent, index) -> object:
    """The path part of a child: its list index, or its key (a key itself: "(key)")."""
    if isinstance(index, int):
        return index
    if isinstance(index, ScalarNode):
        return index.value
    if isinstance(parent, MappingNode) and index is None:
        return "(key)"
    return "(value)"


def load_yaml(text: str):
    """YAML text to plain data within the bounds; BoundExceeded, or yaml.YAMLError."""
    if len(text) > MAX_TEXT_CHARS:
        raise BoundExceeded([], f"the config is longer than {MAX_TEXT_CHARS // (1024 * 1024)} MiB")
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def bound_problems(data: object) -> list[str]:
    """The first bound plain data crosses, as a problem line (empty if none), found by a
    walk with a stack of its own: no recursion, however deep the data."""
    values = 0
    # (value, depth, where): ``where`` links back to the parent's, (parent's where, key),
    # so a path is spelled out only for the problem line.
    stack: list[tuple[object, int, tuple | None]] = [(data, 0, None)]
    while stack:
        value, depth, where = stack.pop()
        values += 1
        if values > MAX_VALUES:
            return [f"{_spelled(where)}: the config holds more than {MAX_VALUES} values"]
        if depth > MAX_DEPTH:
            return [f"{_spelled(where)}: nested more than {MAX_DEPTH} levels deep"]
        if isinstance(value, dict):
            stack.extend((item, depth + 1, (where, key)) for key, item in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((item, depth + 1, (where, index)) for index, item in enumerate(value))
        elif isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
            return [f"{_spelled(where)}: an integer larger than {MAX_INTEGER_BITS} bits"]
    return []


def _spelled(where: tuple | None) -> str:
    location = []
    while where is not None:
        where, key = where
        location.append(key)
    return format_path(reversed(location))


def load_json(text: str):
    """``json.loads`` for request bodies, where a document nested past Python's recursion
    limit is a ValueError (as bad JSON is) rather than a RecursionError and a 500. Configs
    within it are bounded further when they are built (``bound_problems``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None
