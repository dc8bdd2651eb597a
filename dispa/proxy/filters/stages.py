"""The fixed order of filter stages (docs/filters.md, "Stages and order").

``admission`` comes first so that a request refused by an anonymous limit (global
``rate_limits``, a ``local_rate_limit`` keyed by client address or route) costs no other
filter any work. ``rate_limit`` comes after ``authn`` and ``authz``: a limit per consumer
needs the identity authentication found. Within a stage, filters keep config order.
"""

from __future__ import annotations

STAGES = ("admission", "observe", "authn", "authz", "rate_limit", "waf", "transform")
STAGE_INDEX = {stage: index for index, stage in enumerate(STAGES)}


def check_stage(stage: str, who: str) -> str:
    if stage not in STAGE_INDEX:
        raise ValueError(f"{who}: unknown stage '{stage}'; stages are {', '.join(STAGES)}")
    return stage
