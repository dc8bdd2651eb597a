"""The ``ai`` section: online learning that forecasts load and steers balancing weights.

Shape (YAML)::

    ai:
      enabled: true
      sample_interval: 1s       # counters are read and turned into features this often
      steering:
        floor: 0.2              # weight factor of an endpoint flagged anomalous
        recovery_per_second: 0.1

The models live in ``dispa/ai/``; this file only describes and validates the settings,
apart from the data plane, which never imports ``ai``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dispa.config.units import Duration


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Steering(Strict):
    enabled: bool = Field(
        True,
        description="Lower the balancing weight of endpoints flagged anomalous. Off: scores "
        "and decisions are still computed and shown, weights are left alone.",
    )
    floor: float = Field(
        0.2,
        gt=0,
        le=1,
        description="The weight factor of an anomalous endpoint (its weight is multiplied "
        "by it; never 0: only outlier detection takes an endpoint out).",
    )
    recovery_per_second: float = Field(
        0.1,
        gt=0,
        le=1,
        description="How much of its weight factor an endpoint regains per second once its "
        "score has fallen (0.1: from 0.2 back to 1.0 in 8 s).",
    )
    score_high: float = Field(
        0.9, ge=0, le=1, description="An endpoint is flagged once its score stays at or above this."
    )
    score_low: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A flagged endpoint is cleared once its score stays below this.",
    )
    on_after: int = Field(
        2, ge=1, description="Samples in a row at or above `score_high` that flag an endpoint."
    )
    off_after: int = Field(
        3, ge=1, description="Samples in a row below `score_low` that clear a flagged endpoint."
    )
    slow_ratio: float = Field(
        3.0,
        gt=1,
        description="An endpoint whose median latency is this many times its peers' scores 1 "
        "(the score grows with the logarithm of the ratio).",
    )
    error_excess: float = Field(
        0.2,
        gt=0,
        le=1,
        description="An endpoint whose error ratio exceeds its peers' by this much scores 1.",
    )
    latency_floor: Duration = Field(
        0.005,
        description="Latencies below this count as this, so sub-millisecond jitter between "
        "fast endpoints is not read as one being several times slower.",
    )
    smoothing_samples: float = Field(
        2.0,
        gt=0,
        description="Half-life, in samples, of the moving averages the scores are computed "
        "from: higher is steadier and slower to react.",
    )

    # Field validators (not model ones), so each problem is reported even when another
    # field of the section is wrong: pydantic skips "after" model validators then.
    @field_validator("score_low")
    @classmethod
    def _low_not_above_high(cls, value: float, info: ValidationInfo) -> float:
        high = info.data.get("score_high")
        if high is not None and value > high:
            raise ValueError(f"score_low ({value}) must not be above score_high ({high})")
        return value


class Ai(Strict):
    enabled: bool = Field(
        True,
        description="Sample the data plane's counters, learn from them, export forecasts and "
        "anomaly scores, and steer balancing. Off: nothing runs.",
    )
    sample_interval: Duration = Field(
        1.0, description="How often counters are sampled into features (off the request path)."
    )
    queue_size: int = Field(
        120,
        ge=1,
        description="Samples waiting for the learner; when it falls behind the oldest are "
        "dropped (and counted), never the request path slowed.",
    )
    forecast_step: Duration = Field(
        60.0,
        description="Samples are averaged over this step before the forecaster learns them; "
        "a forecast's horizon counts in these steps.",
    )
    forecast_horizon: int = Field(
        10, ge=1, le=60, description="How many steps ahead request rates are forecast."
    )
    detector_warmup: Duration = Field(
        86_400.0,
        description="How long an endpoint's own-history anomaly detector learns before its "
        "scores count (it needs a day to know the daily shape). Comparison with the "
        "endpoint's peers counts from the first sample.",
    )
    history_detector: bool = Field(
        True,
        description="Score each endpoint's median latency against its own history too (the "
        "streaming anomaly detector of docs/ai.md). Costs about 1 MB per endpoint once a "
        "week is learned; off, only the comparison with the endpoint's peers scores.",
    )
    steering: Steering = Field(
        Steering(), description="How anomaly scores lower and restore balancing weights."
    )

    @field_validator("sample_interval", "forecast_step")
    @classmethod
    def _longer_than_zero(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0:
            raise ValueError(f"{info.field_name} must be longer than 0")
        interval = info.data.get("sample_interval")
        if info.field_name == "forecast_step" and interval is not None and value < interval:
            raise ValueError(
                f"forecast_step ({value}s) must not be shorter than sample_interval ({interval}s)"
            )
        return value
