"""`dispa ai score FILE.csv`: run the gateway's anomaly detector on a CSV, offline.

The very same detector the gateway runs, point by point (score, then learn), so a score
seen here is the score the gateway would have given.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence

from dispa.ai.detector import AnomalyDetector
from dispa.ai.series_csv import SeriesFileError, SeriesRow, read_series

EXIT_USAGE = 2


def score_rows(rows: Sequence[SeriesRow]) -> list[float]:
    detector = AnomalyDetector()
    scores = []
    for row in rows:
        scores.append(detector.score_one(row.t, row.value))
        detector.learn(row.t, row.value)
    return scores


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispa ai score",
        description="Score every point of a timestamp,value CSV with the anomaly detector; "
        "write timestamp,value,anomaly_score (0 = normal, 1 = anomalous).",
    )
    parser.add_argument("file", metavar="FILE.csv", help="CSV with a 'timestamp,value' header")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    return parser


def _write(out, rows: Sequence[SeriesRow], scores: Sequence[float]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score"])
    for row, score in zip(rows, scores, strict=True):
        writer.writerow([row.timestamp_text, row.value_text, f"{score:.6f}"])


def main_score(argv: Sequence[str] | None = None) -> int:
    """Entry point for `dispa ai score`; returns the exit status (2 on a bad file)."""
    args = _parser().parse_args(argv)
    try:
        rows = read_series(args.file)
    except SeriesFileError as error:
        print(f"dispa ai score: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    scores = score_rows(rows)
    if args.output is None:
        _write(sys.stdout, rows, scores)
        return 0
    try:
        with open(args.output, "w", newline="", encoding="utf-8") as out:
            _write(out, rows, scores)
    except OSError as error:
        print(f"dispa ai score: error: {args.output}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    return 0
