"""Read a config from YAML or JSON text into a validated ``Gateway``.

Every problem is collected and reported at once with its path: shape errors from the
schema first, then cross-reference errors from ``validate``.

A config read from a file finds the files it names by relative paths beside it
(file_paths.py): the file's folder goes to the models in the validation context.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from dispa.config.bounds import MAX_TEXT_CHARS, BoundExceeded, bound_problems, load_yaml
from dispa.config.errors import ConfigError, format_path
from dispa.config.file_paths import file_context
from dispa.config.filters import filter_config_models
from dispa.config.schema import Gateway
from dispa.config.validate import cross_check, raw_reference_problems

# Pydantic notes the union member it tried (e.g. "headers" for a filter); users never wrote
# those names, so they are dropped from the path.
_INTERNAL_PATH_PARTS = {"function-after[_check_address(), str]"}
# Filter types (registered in dispa/config/filters/) and `use:` entries are union tags too.
_INTERNAL_PATH_PARTS |= {*filter_config_models(), "use"}
_INTERNAL_PATH_PARTS |= {"file", "dns", "etcd", "consul", "kubernetes"}  # discovery providers


def parse_text(text: str, source: str = "") -> dict:
    """YAML (which includes JSON) to a mapping, or ConfigError with the line of the problem
    (or the path of a value past the bounds: bounds.py)."""
    try:
        data = load_yaml(text)
    except BoundExceeded as exceeded:
        raise ConfigError([exceeded.problem], source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}not valid YAML: {problem}"], source) from None
    if data is None:
        raise ConfigError(["the config is empty"], source)
    if not isinstance(data, dict):
        raise ConfigError(
            ["the config must be a mapping of sections (listeners, routes, ...)"], source
        )
    return data


def build_gateway(data: dict, source: str = "", context: dict | None = None) -> Gateway:
    """``context``: how relative file paths are read (file_paths.py); none keeps them."""
    _check_bounds(data, source)
    try:
        gateway = Gateway.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(_describe(exc) + raw_reference_problems(data), source) from None
    problems = cross_check(gateway)
    if problems:
        raise ConfigError(problems, source)
    return gateway


def load_text(text: str, source: str = "") -> Gateway:
    return build_gateway(parse_text(text, source), source)


def load_file(path: str | Path) -> Gateway:
    path = Path(path)
    text = _read_config_file(path)
    return build_gateway(parse_text(text, str(path)), str(path), file_context(path))


def _read_config_file(path: Path) -> str:
    """The file's text, read no further than the bound on a config's size."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_TEXT_CHARS + 1)
    except OSError as exc:
        raise ConfigError([f"cannot read the config file: {exc.strerror}"], str(path)) from None
    if len(raw) > MAX_TEXT_CHARS:
        limit = MAX_TEXT_CHARS // (1024 * 1024)
        raise ConfigError([f"the config file is larger than {limit} MiB"], str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # a binary file, or another encoding: not a crash
        raise ConfigError(
            [f"the config file is not UTF-8 text (byte {exc.start}: {exc.reason})"], str(path)
        ) from None


def _check_bounds(data: object, source: str) -> None:
    """Data that did not come through ``parse_text`` (JSON bodies, the cluster's stream)
    is held to the same bounds before validation recurses into it."""
    problems = bound_problems(data)
    if problems:
        raise ConfigError(problems, source)


def dump_plain(gateway: Gateway) -> dict:
    """The config as plain JSON data, defaults included so readers see what is in force."""
    return gateway.model_dump(mode="json")


def dump_json(gateway: Gateway) -> str:
    return json.dumps(dump_plain(gateway), indent=2)


def _describe(exc: ValidationError) -> list[str]:
    problems = []
    errors = exc.errors(include_url=False)
    located = [tuple(_clean_location(e["loc"])) for e in errors]
    for error, location in zip(errors, located, strict=True):
        if error["type"] == "too_short" and any(
            other[: len(location)] == location and other != location for other in located
        ):
            continue  # a list left short only because its entries failed: already reported
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif error["type"] == "missing":
            message = "required field is missing"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        elif error["type"] == "union_tag_invalid" and "'use'" in error["ctx"]["expected_tags"]:
            # A filter entry: a type, or `use:` (schema.FilterConfig).
            known = ", ".join(f"'{name}'" for name in filter_config_models())
            message = (
                f"unknown type; expected one of {known} (or `use: NAME` of a "
                "filter_definitions entry)"
            )
        elif error["type"] == "union_tag_invalid":
            message = f"unknown type; expected one of {error['ctx']['expected_tags']}"
        elif error["type"] == "union_tag_not_found" and "providers" in location:
            message = "each entry needs a 'type' (file, dns, etcd, consul, kubernetes)"
        elif error["type"] == "union_tag_not_found":
            known = ", ".join(filter_config_models())
            message = f"each entry needs a 'type' ({known})"
        problems.append(f"{format_path(location)}: {message}")
    return problems


def _clean_location(location: tuple) -> list[object]:
    parts = list(location)
    # Drop the discriminator tag pydantic inserts after a list index ("filters[0].headers.x").
    cleaned = []
    for index, part in enumerate(parts):
        previous = parts[index - 1] if index else None
        # ... or after a name in filter_definitions ("filter_definitions.x.headers.y").
        named = index >= 2 and parts[index - 2] == "filter_definitions"
        if (
            isinstance(part, str)
            and part in _INTERNAL_PATH_PARTS
            and (isinstance(previous, int) or named)
        ):
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        cleaned.append(part)
    return cleaned


def build_model(model, data: dict, source: str = "", cross_checks=None, context=None):
    """Any config model from plain data, with every problem reported by path.

    ``cross_checks`` takes the built model and returns further problems (names that
    must exist, be unique); the gateway's own checks are used by ``build_gateway``.
    ``context``: how relative file paths are read (file_paths.py); none keeps them.
    """
    _check_bounds(data, source)
    try:
        built = model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(_describe(exc) + raw_reference_problems(data), source) from None
    problems = cross_checks(built) if cross_checks is not None else []
    if problems:
        raise ConfigError(problems, source)
    return built


def load_model_file(model, path: str | Path, cross_checks=None):
    path = Path(path)
    text = _read_config_file(path)
    return build_model(
        model, parse_text(text, str(path)), str(path), cross_checks, file_context(path)
    )
