"""``--log-level`` values, and which loggers each one lets through."""

from __future__ import annotations

import logging

import pytest

from dispa.observe.log_levels import (
    LogLevel,
    configure_logging,
    configured_log_level,
    parse_log_level,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("debug", LogLevel("debug", False)),
        ("INFO", LogLevel("info", False)),
        ("debug:all", LogLevel("debug", True)),
        ("Warning:ALL", LogLevel("warning", True)),
        (" error ", LogLevel("error", False)),
    ],
)
def test_valid_levels(text: str, expected: LogLevel) -> None:
    assert parse_log_level(text) == expected


@pytest.mark.parametrize("text", ["", "verbose", "debug:", "debug:some", "all", ":all", "10"])
def test_invalid_levels_name_the_valid_forms(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_log_level(text)
    message = str(refused.value)
    assert f"'{text}'" in message
    assert "debug, info, warning or error" in message
    assert "debug:all" in message


def test_the_command_line_form_round_trips() -> None:
    for text in ("debug", "info:all", "error"):
        assert str(parse_log_level(text)) == text


@pytest.fixture
def restored_levels():
    root, own = logging.getLogger(), logging.getLogger("dispa")
    saved = (root.level, own.level, configured_log_level())
    yield
    configure_logging(saved[2])  # remembered for workers: put back what it was
    root.setLevel(saved[0])
    own.setLevel(saved[1])


def test_debug_leaves_libraries_at_warning(restored_levels) -> None:
    configure_logging(parse_log_level("debug"))
    assert logging.getLogger("dispa.proxy.exchange").isEnabledFor(logging.DEBUG)
    for library in ("hpack.hpack", "h2.connection", "asyncio", "aiohttp.access", "pysyncobj"):
        logger = logging.getLogger(library)
        assert not logger.isEnabledFor(logging.INFO), library
        assert logger.isEnabledFor(logging.WARNING), library
    assert str(configured_log_level()) == "debug"


def test_all_lowers_libraries_too(restored_levels) -> None:
    configure_logging(parse_log_level("debug:all"))
    assert logging.getLogger("hpack.hpack").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("dispa.edge").isEnabledFor(logging.DEBUG)
    assert str(configured_log_level()) == "debug:all"


def test_error_silences_library_warnings_as_well(restored_levels) -> None:
    configure_logging(parse_log_level("error"))
    assert not logging.getLogger("aiohttp.client").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("dispa.run").isEnabledFor(logging.WARNING)
    assert logging.getLogger("dispa.run").isEnabledFor(logging.ERROR)
