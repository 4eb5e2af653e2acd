"""Generate a small synthetic churn data set and split it into train and test CSV files.

Standard library only: the training image carries no Python data stack. The label depends on the
features through a known logistic model plus noise, so a GBM can learn it and the evaluation can
check that it did.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

COLUMNS = ["tenure_months", "monthly_charges", "support_calls", "contract", "churn"]
CONTRACTS = ["monthly", "one_year", "two_year"]


def customer(rng: random.Random) -> dict[str, object]:
    """One customer row; churn is drawn from a logistic model of the features."""
    tenure = rng.randint(1, 72)
    charges = round(rng.uniform(20, 120), 2)
    calls = min(int(rng.expovariate(0.6)), 10)
    contract = rng.choices(CONTRACTS, weights=[0.55, 0.25, 0.20])[0]
    score = (
        1.2
        - 0.05 * tenure
        + 0.02 * (charges - 70)
        + 0.45 * calls
        - {"monthly": 0.0, "one_year": 1.0, "two_year": 2.0}[contract]
    )
    churn = "yes" if rng.random() < 1 / (1 + math.exp(-score)) else "no"
    return dict(zip(COLUMNS, [tenure, charges, calls, contract, churn], strict=True))


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    """Write rows with a header line."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    """Parse arguments, generate, split, write."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--test-fraction", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.rows < 100:
        parser.error(f"--rows must be at least 100, got {args.rows}")
    if not 0.05 <= args.test_fraction <= 0.5:
        parser.error(f"--test-fraction must be within [0.05, 0.5], got {args.test_fraction}")

    rng = random.Random(args.seed)
    rows = [customer(rng) for _ in range(args.rows)]
    n_test = round(len(rows) * args.test_fraction)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "train.csv", rows[n_test:])
    write_csv(args.out / "test.csv", rows[:n_test])
    churn_rate = sum(r["churn"] == "yes" for r in rows) / len(rows)
    print(f"wrote {len(rows) - n_test} train and {n_test} test rows to {args.out}")
    print(f"churn rate {churn_rate:.3f}")


if __name__ == "__main__":
    main()
