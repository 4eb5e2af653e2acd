"""Branch 1: revenue and transaction count per region, written to summary.json."""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    """Aggregate transactions.csv by region."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--simulate-work", type=float, default=0.0)
    args = parser.parse_args()

    revenue: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    with (args.sales / "transactions.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            revenue[row["region"]] += int(row["amount_cents"])
            count[row["region"]] += 1
    time.sleep(args.simulate_work)
    summary = {
        "branch": "by_region",
        "total_cents": sum(revenue.values()),
        "transactions": sum(count.values()),
        "groups": {
            k: {"revenue_cents": revenue[k], "transactions": count[k]} for k in sorted(revenue)
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"{len(revenue)} regions, total {summary['total_cents'] / 100:.2f}")


if __name__ == "__main__":
    main()
