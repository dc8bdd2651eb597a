"""Evaluate the online-learning models (dispa/ai) on NAB and on synthetic traffic.

    .venv/bin/python bench/ai_eval.py                 # print the tables (about a minute)
    .venv/bin/python bench/ai_eval.py --write-docs    # also refresh the results in docs/ai.md

Detection: Dispa's AnomalyDetector against river's HalfSpaceTrees (behind a MinMaxScaler,
as river's documentation shows) and random scores, all turned into alarms by the same
hysteresis and scored by `dispa.ai.evaluation` (method in docs/ai.md). The baselines are
also given their best thresholds, chosen with the labels from a grid, at a false-positive
rate no higher than the detector's: a generous comparison for them.

Forecasting: SeasonalForecaster against the seasonal-naive forecast (the value one day
earlier), MAE at 1 and 30 steps, plus river's own HoltWinters and SNARIMAX for reference.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from river import anomaly, compose, linear_model, optim, preprocessing, time_series

from dispa.ai.detector import AnomalyDetector
from dispa.ai.evaluation import (
    DetectionResult,
    FlagPolicy,
    compare_forecasts,
    evaluate_scores,
    geometric_mean,
    window_index_ranges,
)
from dispa.ai.forecaster import SeasonalForecaster
from dispa.ai.hysteresis import SENSITIVE_HIGH, SENSITIVE_ON_AFTER
from dispa.ai.seasonal_naive import SeasonalNaiveForecaster
from dispa.ai.series_csv import parse_timestamp, read_series
from dispa.ai.synthetic import daily_request_rate

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "ai.md"
BEGIN_MARK = "<!-- ai-eval:begin -->"
END_MARK = "<!-- ai-eval:end -->"
FORECAST_SERIES = (
    "realAWSCloudwatch/elb_request_count_8c0756.csv",
    "realAWSCloudwatch/ec2_network_in_257a54.csv",
    "realAWSCloudwatch/ec2_network_in_5abac7.csv",
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
)
BASELINE_GRID = [
    FlagPolicy(high, min(high, 0.9), on_after, 6)
    for high in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)
    for on_after in (1, 2, 3, 4, 6)
] + [FlagPolicy(high, 0.9, on_after, 6) for high in (0.9995, 0.9999) for on_after in (1, 2, 3)]


@dataclass
class LabeledSeries:
    name: str
    timestamps: list[float]
    values: list[float]
    windows: list[tuple[int, int]]


def load_nab(root: Path) -> list[LabeledSeries]:
    windows = json.loads((root / "combined_windows.json").read_text())
    series = []
    for key in sorted(windows):
        rows = read_series(str(root / "data" / key))
        timestamps = [row.t for row in rows]
        spans = [(parse_timestamp(a), parse_timestamp(b)) for a, b in windows[key]]
        series.append(
            LabeledSeries(
                key.split("/")[-1],
                timestamps,
                [row.value for row in rows],
                window_index_ranges(timestamps, spans),
            )
        )
    return series


class HalfSpaceTreesBaseline:
    def __init__(self) -> None:
        self.model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))

    def score_one(self, t: float, value: float) -> float:
        return self.model.score_one({"value": value})

    def learn(self, t: float, value: float) -> None:
        self.model.learn_one({"value": value})


class RandomBaseline:
    def __init__(self, seed: int = 1) -> None:
        self.random = random.Random(seed)

    def score_one(self, t: float, value: float) -> float:
        return self.random.random()

    def learn(self, t: float, value: float) -> None:
        pass


def run_detector(make, series: LabeledSeries) -> list[float]:
    detector = make()
    scores = []
    for t, value in zip(series.timestamps, series.values, strict=True):
        scores.append(detector.score_one(t, value))
        detector.learn(t, value)
    return scores


def total(all_scores, all_series, policy: FlagPolicy) -> DetectionResult:
    result = DetectionResult()
    for scores, series in zip(all_scores, all_series, strict=True):
        result = result + evaluate_scores(scores, series.windows, policy)
    return result


def best_within(all_scores, all_series, fp_budget: float) -> tuple[FlagPolicy, DetectionResult]:
    """The grid policy with the most windows detected at no more false positives."""
    best = None
    for policy in BASELINE_GRID:
        result = total(all_scores, all_series, policy)
        if result.false_positives_per_1000 > fp_budget:
            continue
        key = (result.detected, -result.false_positives)
        if best is None or key > best[0]:
            best = (key, policy, result)
    if best is None:
        return FlagPolicy(1.1, 1.1), total(all_scores, all_series, FlagPolicy(1.1, 1.1))
    return best[1], best[2]


def detection_row(label: str, policy: FlagPolicy, result: DetectionResult) -> str:
    earliness = f"{result.median_earliness:.2f}" if result.earliness else "-"
    return (
        f"| {label} | {policy.high:g} / {policy.low:g} / {policy.on_after} / "
        f"{policy.off_after} | {result.detected}/{result.windows} "
        f"({100 * result.detection_rate:.0f}%) | {earliness} | "
        f"{result.false_positives} | {result.false_positives_per_1000:.2f} |"
    )


def evaluate_detection(series: list[LabeledSeries]) -> list[str]:
    lines = []
    started = time.monotonic()
    ours = [run_detector(AnomalyDetector, s) for s in series]
    ours_seconds = time.monotonic() - started
    hst = [run_detector(HalfSpaceTreesBaseline, s) for s in series]
    rnd = [run_detector(RandomBaseline, s) for s in series]
    points = sum(len(s.values) for s in series)
    policy = FlagPolicy()
    sensitive = FlagPolicy(high=SENSITIVE_HIGH, on_after=SENSITIVE_ON_AFTER)
    lines += [
        f"Detection on {len(series)} NAB files ({points} points); the detector scored "
        f"{1e6 * ours_seconds / points:.0f} us per point.",
        "",
        "| detector | flag policy (high / low / on after / off after) | windows detected "
        "| median earliness | false positives | FP per 1,000 points |",
        "|:---|:---|---:|---:|---:|---:|",
    ]
    for name, chosen in (("default", policy), ("sensitive", sensitive)):
        ours_total = total(ours, series, chosen)
        budget = ours_total.false_positives_per_1000
        lines += [
            detection_row(f"**Dispa AnomalyDetector, {name} policy**", chosen, ours_total),
            detection_row("river HalfSpaceTrees, same policy", chosen, total(hst, series, chosen)),
            detection_row("random scores, same policy", chosen, total(rnd, series, chosen)),
        ]
        for label, scores in (("river HalfSpaceTrees", hst), ("random scores", rnd)):
            best_policy, best_result = best_within(scores, series, budget)
            lines.append(
                detection_row(f"{label}, best threshold at FP <= Dispa's", best_policy, best_result)
            )
    lines += [
        "",
        "Per file (Dispa AnomalyDetector, default policy):",
        "",
        "| file | windows detected | earliness | false positives |",
        "|:---|---:|---:|---:|",
    ]
    for scores, s in zip(ours, series, strict=True):
        result = evaluate_scores(scores, s.windows, policy)
        earliness = "" if not result.earliness else f"{result.median_earliness:.2f}"
        lines.append(
            f"| {s.name} | {result.detected}/{result.windows} | {earliness} "
            f"| {result.false_positives} |"
        )
    return lines


class RiverForecaster:
    """river's time-series models know no timestamps: fed in order, one point a step."""

    def __init__(self, model, step_seconds: float) -> None:
        self.model = model
        self.step_seconds = step_seconds

    def learn(self, t: float, value: float) -> None:
        self.model.learn_one(value)

    def forecast(self, horizon: int) -> list[float]:
        return list(self.model.forecast(horizon=horizon))


def river_holt_winters(step: float) -> RiverForecaster:
    season = round(86_400 / step)
    return RiverForecaster(
        time_series.HoltWinters(alpha=0.3, beta=0.01, gamma=0.3, seasonality=season), step
    )


def river_snarimax(step: float) -> RiverForecaster:
    regressor = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.SGD(0.005), intercept_lr=0.1
    )
    model = time_series.SNARIMAX(
        p=2, d=0, q=0, m=round(86_400 / step), sp=1, sd=0, sq=0, regressor=regressor
    )
    return RiverForecaster(model, step)


def evaluate_forecasts(root: Path, every: int) -> list[str]:
    series = []
    for key in FORECAST_SERIES:
        rows = read_series(str(root / "data" / key))
        series.append((key.split("/")[-1], [r.t for r in rows], [r.value for r in rows]))
    series.append(("synthetic daily request rate (35 days)", *daily_request_rate()))
    lines = [
        f"Forecasts scored at every {every}th point after a 2-day warm-up; MAE of the "
        "1-step and 30-step forecasts (5 and 150 minutes ahead), and the ratio to the "
        "seasonal-naive MAE (below 1: better than the baseline).",
        "",
        "| series | seasonal-naive MAE 1 / 30 | Dispa MAE 1 / 30 | Dispa ratio 1 / 30 "
        "| river HoltWinters ratio 1 / 30 | river SNARIMAX ratio 1 / 30 |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    ratios = {"dispa": ([], []), "hw": ([], []), "snarimax": ([], [])}
    for name, timestamps, values in series:
        ours = compare_forecasts(
            timestamps, values, SeasonalForecaster(), SeasonalNaiveForecaster(), every=every
        )
        cells = []
        for key, make in (("hw", river_holt_winters), ("snarimax", river_snarimax)):
            other = compare_forecasts(
                timestamps, values, make(300.0), SeasonalNaiveForecaster(), every=every
            )
            ratios[key][0].append(other.ratio(1))
            ratios[key][1].append(other.ratio(30))
            cells.append(f"{_ratio(other.ratio(1))} / {_ratio(other.ratio(30))}")
        ratios["dispa"][0].append(ours.ratio(1))
        ratios["dispa"][1].append(ours.ratio(30))
        lines.append(
            f"| {name} | {ours.baseline_mae(1):.4g} / {ours.baseline_mae(30):.4g} "
            f"| {ours.model_mae(1):.4g} / {ours.model_mae(30):.4g} "
            f"| {ours.ratio(1):.2f} / {ours.ratio(30):.2f} | {cells[0]} | {cells[1]} |"
        )
    overall = {
        key: (geometric_mean(one), geometric_mean(thirty)) for key, (one, thirty) in ratios.items()
    }
    lines.append(
        "| **overall (geometric mean of ratios)** | | "
        f"| **{overall['dispa'][0]:.2f} / {overall['dispa'][1]:.2f}** "
        f"| {_ratio(overall['hw'][0])} / {_ratio(overall['hw'][1])} "
        f"| {_ratio(overall['snarimax'][0])} / {_ratio(overall['snarimax'][1])} |"
    )
    return lines


def _ratio(value: float) -> str:
    # An unstable model's errors can overflow; say so rather than print 1e+40.
    return f"{value:.2f}" if value < 100 else "diverged"


def write_docs(text: str) -> None:
    document = DOCS.read_text()
    start = document.index(BEGIN_MARK) + len(BEGIN_MARK)
    end = document.index(END_MARK)
    DOCS.write_text(document[:start] + "\n" + text + "\n" + document[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nab", default="/work/shared/data/nab", help="NAB data folder")
    parser.add_argument("--every", type=int, default=5, help="forecast at every Nth point")
    parser.add_argument("--write-docs", action="store_true", help="refresh docs/ai.md")
    args = parser.parse_args()
    root = Path(args.nab)
    started = time.monotonic()
    lines = ["### Anomaly detection", ""]
    lines += evaluate_detection(load_nab(root))
    lines += ["", "### Forecasting", ""]
    lines += evaluate_forecasts(root, args.every)
    lines += [
        "",
        f"Produced by `.venv/bin/python bench/ai_eval.py --write-docs` "
        f"in {time.monotonic() - started:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
