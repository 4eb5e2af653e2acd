"""Join: combine both branch summaries into report.json; fail when their totals disagree.

The report lists which branches it read (`branches`), so a run shows the join saw both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def read_summary(folder: Path, expected_branch: str) -> dict[str, Any]:
    """The branch summary in `folder`, checked to come from `expected_branch`."""
    path = folder / "summary.json"
    if not path.is_file():
        sys.exit(f"report: {path} not found (output of branch {expected_branch})")
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if summary.get("branch") != expected_branch:
        sys.exit(f"report: {path} comes from {summary.get('branch')!r}, not {expected_branch!r}")
    return summary


def main() -> None:
    """Read both summaries, cross-check totals, write report.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=Path, required=True)
    parser.add_argument("--products", type=Path, required=True)
    parser.add_argument("--currency", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    regions = read_summary(args.regions, "by_region")
    products = read_summary(args.products, "by_product")
    totals = {"by_region": int(regions["total_cents"]), "by_product": int(products["total_cents"])}
    report = {
        "branches": sorted(totals),
        "currency": args.currency,
        "total": totals["by_region"] / 100,
        "transactions": regions["transactions"],
        "totals_agree": len(set(totals.values())) == 1
        and regions["transactions"] == products["transactions"],
        "revenue_by_region": {k: v["revenue_cents"] / 100 for k, v in regions["groups"].items()},
        "revenue_by_product": {k: v["revenue_cents"] / 100 for k, v in products["groups"].items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"total {report['total']:.2f} {args.currency} from branches {', '.join(report['branches'])}"
    )
    if not report["totals_agree"]:
        sys.exit(f"report: branch totals disagree: {totals}")


if __name__ == "__main__":
    main()
