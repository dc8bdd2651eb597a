"""Documents providers read from their sources, parsed within bounds.

A pools file and a kubeconfig are written by operators; an etcd value by any instance
that registers; a Consul or Kubernetes answer comes from a peer on the network. Parsed
without bounds, a document nested 100,000 deep raised a RecursionError (which escaped the
handling of a provider that cannot start, and made one bad etcd registration hide every
other instance), a few YAML aliases could stand for billions of values, and a watch line
without end grew without limit. Here each is read with the config's bounds
(dispa.config.bounds) and a cap on its size, and a document past them is a BadDocument,
a ValueError naming its source: the provider reports it as its last error and keeps its
last good view.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import yaml

from dispa.config.bounds import (
    MAX_TEXT_CHARS,
    BoundExceeded,
    bound_problems,
    load_json,
    load_yaml,
)

# A pools file, kubeconfig, etcd value, Consul answer or Kubernetes list or watch event:
# the size of the largest config, far above what one service's endpoints take.
MAX_DOCUMENT_BYTES = MAX_TEXT_CHARS
_LIMIT_TEXT = f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB"


class BadDocument(ValueError):
    """A document that does not parse or is past the bounds; the message names its source."""


def read_file_text(path: Path) -> str:
    """A file's text, read no further than MAX_DOCUMENT_BYTES. OSError as open() raises it
    (a missing file is the caller's to report)."""
    with open(path, "rb") as file:
        raw = file.read(MAX_DOCUMENT_BYTES + 1)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise BadDocument(f"{path}: larger than {_LIMIT_TEXT}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadDocument(f"{path}: not UTF-8 text (byte {error.start})") from None


def parse_yaml(text: str, source: str) -> object:
    """YAML (or JSON) written by an operator, within the config's bounds."""
    try:
        return load_yaml(text)
    except BoundExceeded as exceeded:
        raise BadDocument(f"{source}: {exceeded.problem}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise BadDocument(f"{source}: {where}not valid YAML: {problem}") from None
    except ValueError as error:  # a scalar YAML resolves but cannot build (a bad date)
        raise BadDocument(f"{source}: not valid YAML: {error}") from None


def parse_json(data: str | bytes, source: str) -> object:
    """A small JSON document (a pools file, an etcd value), within the config's bounds."""
    value = parse_answer(data, source)
    problems = bound_problems(value)
    if problems:
        raise BadDocument(f"{source}: {problems[0]}")
    return value


def parse_answer(data: str | bytes, source: str) -> object:
    """A peer's JSON answer: capped in size, and nested no deeper than the parser can go.
    Not held to the bound on a config's count of values: a large service's answer may
    hold more, and its size is capped already. Readers of answers take known fields
    without recursing, so depth short of the parser's limit costs nothing more."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise BadDocument(f"{source}: larger than {_LIMIT_TEXT}")
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadDocument(f"{source}: not valid JSON (not UTF-8, byte {error.start})") from None
    try:
        return load_json(data)
    except ValueError as error:
        raise BadDocument(f"{source}: {_json_problem(error)}") from None


def _json_problem(error: ValueError) -> str:
    text = str(error)
    return text if text.startswith("the JSON document") else f"not valid JSON: {text}"


async def read_answer(response, source: str) -> object:
    """The JSON body of an aiohttp client response, read no further than the cap."""
    length = response.content_length
    if length is not None and length > MAX_DOCUMENT_BYTES:
        raise BadDocument(f"{source}: larger than {_LIMIT_TEXT} ({length} bytes announced)")
    body = bytearray()  # grows in place: no copy of what came before on each read
    while len(body) <= MAX_DOCUMENT_BYTES:
        more = await response.content.read(MAX_DOCUMENT_BYTES + 1 - len(body))
        if not more:
            break
        body += more
    return parse_answer(body, source)


async def json_lines(chunks: AsyncIterable[bytes], source: str) -> AsyncIterator[object]:
    """One JSON value per line of a stream (a Kubernetes watch), each line capped at
    MAX_DOCUMENT_BYTES (an EndpointSlice can be longer than aiohttp's line limit, so
    lines are split here). Only each new chunk is searched for the end of a line, so a long
    line costs what its bytes cost, not their square."""
    pieces: list[bytes] = []  # the line so far
    held = 0
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            line = b"".join([*pieces, chunk[start:end]]) if pieces else chunk[start:end]
            pieces.clear()
            held = 0
            start = end + 1
            if len(line) > MAX_DOCUMENT_BYTES:
                raise BadDocument(f"{source}: a line longer than {_LIMIT_TEXT}")
            if line.strip():
                yield parse_answer(line, source)
        rest = chunk[start:] if start else chunk
        if rest:
            held += len(rest)
            if held > MAX_DOCUMENT_BYTES:
                raise BadDocument(f"{source}: a line longer than {_LIMIT_TEXT}")
            pieces.append(rest)
    line = b"".join(pieces)
    if line.strip():
        yield parse_answer(line, source)
