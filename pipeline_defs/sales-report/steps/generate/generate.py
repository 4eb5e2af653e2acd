"""Generate a day of sales transactions as transactions.csv (standard library only)."""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

REGIONS = ["north", "south", "east", "west"]
PRODUCTS = {"basic": 9.99, "plus": 19.99, "pro": 49.99, "team": 199.0}


def main() -> None:
    """Parse arguments and write `count` transactions in cents (integers keep totals exact)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be positive, got {args.count}")

    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "transactions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "region", "product", "quantity", "amount_cents"])
        for index in range(args.count):
            product = rng.choice(list(PRODUCTS))
            quantity = rng.randint(1, 5)
            cents = round(PRODUCTS[product] * 100) * quantity
            writer.writerow([index, rng.choice(REGIONS), product, quantity, cents])
    print(f"wrote {args.count} transactions to {args.out / 'transactions.csv'}")


if __name__ == "__main__":
    main()
