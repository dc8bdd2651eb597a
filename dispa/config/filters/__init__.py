"""Filter config models, one module per filter type, found without a central list.

A filter type's config is pure data, so it lives here in the config layer (which knows
nothing of the data plane): a module of this package defines a ``Strict`` model with a
``type: Literal["NAME"]`` field and decorates it with ``@filter_config``. The schema's
filter union is built from every such model (``filter_config_models``), so adding a
filter type means adding a module here and its runtime half in ``dispa/proxy/filters/``
(which registers its stage and factory against the model): no edit in a central file.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing

from pydantic import BaseModel

_MODELS: dict[str, type[BaseModel]] = {}
_discovered = False


def filter_config(model: type[BaseModel]) -> type[BaseModel]:
    """Class decorator: register ``model`` as the config of filter type ``model.type``."""
    (name,) = typing.get_args(model.model_fields["type"].annotation)
    if name in _MODELS and _MODELS[name] is not model:
        raise ValueError(f"filter type '{name}' is registered twice")
    _MODELS[name] = model
    return model


def filter_config_models() -> dict[str, type[BaseModel]]:
    """Every filter type's config model by type name, in name order (stable docs)."""
    global _discovered
    if not _discovered:
        _discovered = True
        # Modules starting with "_" are helpers, not filter types.
        for module in pkgutil.iter_modules(__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(_MODELS.items()))
