"""Reading a `timestamp,value` CSV, with errors that name the line at fault."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime

EXPECTED_HEADER = ["timestamp", "value"]


class SeriesFileError(Exception):
    """A problem with the file the user gave, worded for the user."""


@dataclass(frozen=True)
class SeriesRow:
    timestamp_text: str
    value_text: str
    t: float  # seconds since the epoch, UTC
    value: float


def parse_timestamp(text: str) -> float:
    """ISO 8601 (`2014-04-10 00:04:00`, `...T...Z`, with an offset) or epoch seconds.

    Timestamps without an offset are taken as UTC, so daily seasonality follows UTC days.
    """
    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def read_series(path: str) -> list[SeriesRow]:
    try:
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise SeriesFileError(f"{path}: no such file") from None
    except OSError as error:
        raise SeriesFileError(f"{path}: cannot read: {error.strerror}") from None
    with handle:
        try:
            return _parse(path, csv.reader(handle))
        except UnicodeDecodeError:
            raise SeriesFileError(f"{path}: not a UTF-8 text file") from None


def _parse(path: str, reader) -> list[SeriesRow]:
    header = next(reader, None)
    if header is None or [cell.strip().lower() for cell in header] != EXPECTED_HEADER:
        found = "an empty file" if header is None else ",".join(header)
        raise SeriesFileError(f"{path}: line 1: expected header 'timestamp,value', found {found!r}")
    rows = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise SeriesFileError(f"{path}: line {line}: expected 2 fields, found {len(row)}")
        timestamp_text, value_text = row
        try:
            t = parse_timestamp(timestamp_text)
        except ValueError:
            message = f"{path}: line {line}: bad timestamp {timestamp_text!r}"
            raise SeriesFileError(message) from None
        try:
            value = float(value_text)
        except ValueError:
            raise SeriesFileError(f"{path}: line {line}: bad value {value_text!r}") from None
        if not math.isfinite(value):
            raise SeriesFileError(f"{path}: line {line}: value is not finite: {value_text!r}")
        rows.append(SeriesRow(timestamp_text, value_text, t, value))
    return rows
