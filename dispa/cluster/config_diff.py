"""A readable diff between two config revisions (unified diff of their YAML)."""

from __future__ import annotations

import difflib

import yaml


def render_yaml(config: dict | None) -> str:
    if config is None:
        return ""
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


def config_diff(old: dict | None, new: dict | None, old_label: str, new_label: str) -> str:
    lines = difflib.unified_diff(
        render_yaml(old).splitlines(keepends=True),
        render_yaml(new).splitlines(keepends=True),
        fromfile=old_label,
        tofile=new_label,
    )
    return "".join(lines)
