"""Filter types: each registers its config model, stage and factory where it is defined.

    @filter_type(HeadersFilter, stage="transform")
    class HeadersEdit(Filter): ...

The config model (dispa/config/filters/) names the type; the config schema's filter
union is built from those models, so neither this file nor the schema changes when a
type is added. Modules of this package are imported on first use, so a type registers
itself by existing.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from collections.abc import Callable
from typing import NamedTuple

from pydantic import BaseModel

from dispa.config.filters import filter_config_models
from dispa.proxy import filters as _package
from dispa.proxy.filters.base import Filter
from dispa.proxy.filters.stages import check_stage


class FilterServices(NamedTuple):
    """What the gateway lends filters at build time (more arrive with later filters)."""

    executor: object | None = None  # the FilterExecutor, for work that blocks


class FilterType(NamedTuple):
    name: str
    config: type[BaseModel]
    stage: str
    factory: Callable[[BaseModel, FilterServices], Filter]


FILTER_TYPES: dict[str, FilterType] = {}
_discovered = False


def register_filter(
    config: type[BaseModel],
    stage: str,
    factory: Callable[[BaseModel, FilterServices], Filter],
) -> FilterType:
    """Register the type named by ``config``'s ``type`` literal."""
    (name,) = typing.get_args(config.model_fields["type"].annotation)
    check_stage(stage, f"filter type '{name}'")
    if filter_config_models().get(name) is not config:
        raise ValueError(
            f"filter type '{name}': its config model must be registered with @filter_config "
            "in a module of dispa/config/filters/"
        )
    existing = FILTER_TYPES.get(name)
    if existing is not None and existing.factory is not factory:
        raise ValueError(f"filter type '{name}' is registered twice")
    FILTER_TYPES[name] = registered = FilterType(name, config, stage, factory)
    return registered


def filter_type(config: type[BaseModel], stage: str):
    """Class decorator: register a Filter class, built as ``cls(config)`` or, when it
    defines one, ``cls.from_config(config, services)``."""

    def register(cls: type[Filter]) -> type[Filter]:
        cls.stage = stage
        factory = getattr(cls, "from_config", None) or (lambda conf, services: cls(conf))
        register_filter(config, stage, factory)
        return cls

    return register


def filter_types() -> dict[str, FilterType]:
    """Every registered type; each config model without a runtime type is an error."""
    global _discovered
    if not _discovered:
        _discovered = True
        for module in pkgutil.iter_modules(_package.__path__):
            importlib.import_module(f"dispa.proxy.filters.{module.name}")
        missing = set(filter_config_models()) - set(FILTER_TYPES)
        if missing:
            raise LookupError(f"filter types with a config model but no filter: {sorted(missing)}")
    return FILTER_TYPES


def build_filter(config, services: FilterServices | None = None) -> Filter:
    kind = filter_types()[config.type]
    return kind.factory(config, services or FilterServices())
