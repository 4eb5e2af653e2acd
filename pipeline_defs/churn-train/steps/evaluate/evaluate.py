"""Evaluate test-set churn scores: AUC, accuracy at 0.5, log loss, written to metrics.json.

Fails (exit 1) when the AUC is below --min-auc, so a degraded model stops the pipeline.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path


def read_scores(folder: Path) -> list[tuple[bool, float]]:
    """(is churn, predicted churn probability) for every test row."""
    path = folder / "test_scores.csv"
    if not path.is_file():
        sys.exit(f"evaluate: {path} not found (expected the train step's test_scores.csv)")
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            (row["churn"] == "yes", float(row["probability"])) for row in csv.DictReader(handle)
        ]


def auc(scores: list[tuple[bool, float]]) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    ordered = sorted(scores, key=lambda item: item[1])
    ranks = [0.0] * len(ordered)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1][1] == ordered[start][1]:
            end += 1
        for index in range(start, end + 1):
            ranks[index] = (start + end) / 2 + 1
        start = end + 1
    positives = sum(label for label, _ in ordered)
    negatives = len(ordered) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    rank_sum = sum(rank for rank, (label, _) in zip(ranks, ordered, strict=True) if label)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def main() -> None:
    """Parse arguments, compute metrics, write metrics.json, apply the quality gate."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--min-auc", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    scores = read_scores(args.scores)
    eps = 1e-15
    metrics = {
        "rows": len(scores),
        "auc": auc(scores),
        "accuracy": sum((p >= 0.5) == y for y, p in scores) / len(scores),
        "log_loss": -sum(math.log(min(max(p if y else 1 - p, eps), 1 - eps)) for y, p in scores)
        / len(scores),
        "churn_rate": sum(y for y, _ in scores) / len(scores),
        "min_auc": args.min_auc,
    }
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    metrics["passed"] = metrics["auc"] >= args.min_auc
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(metrics))
    if not metrics["passed"]:
        sys.exit(f"evaluate: AUC {metrics['auc']:.3f} is below --min-auc {args.min_auc}")


if __name__ == "__main__":
    main()
