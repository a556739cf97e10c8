"""Both sides of `bench check`'s rule, by simulation at a baseline's own seed-to-seed sds: how often a night in
which nothing changed raises any false alarm, and how often a row whose mean really dropped by 2 or 5 points is
flagged. Reruns are independent draws (another machine, another library version: on one machine a rerun of the
same seeds is bit-identical, the paired differences are zero, and only drops beyond min_tolerance flag), with
the baseline's seeds (paired test) or other seeds (Welch). Rows of one seed have no sd and are left out.

    .venv/bin/python benchmarks/check_gate.py [--baseline results/baselines/nightly.json] [--runs 10000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harness.analysis.check import read_baseline, row_level, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=Path("results/baselines/nightly.json"))
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()

    baseline = read_baseline(args.baseline)
    rows = [row for row in baseline.rows.values() if len(row.values) > 1]
    sds = [float(np.std(row.values, ddof=1)) for row in rows]
    seeds = min(len(row.values) for row in rows)
    rule = baseline.rule
    print(
        f"{args.baseline}: {len(rows)} rows with {seeds}+ seeds; sd per row (points): "
        + ", ".join(f"{sd:.2f}" for sd in sorted(sds))
    )
    print(
        f"rule: false_alarm {rule.false_alarm}, min_tolerance {rule.min_tolerance}; "
        f"per-row level {row_level(rule, len(rows)):.4f} (one-sided); {args.runs:,} simulated runs each\n"
    )
    print("| rerun seeds | drop (points) | runs with any row flagged | rows flagged |")
    print("| --- | --- | --- | --- |")
    for paired in (True, False):
        for drop in (0.0, 2.0, 5.0):
            any_row, per_row = simulate(rule, sds, seeds, drop, args.runs, paired)
            name = "the baseline's (paired)" if paired else "other (Welch)"
            print(f"| {name} | {drop:g} | {any_row:.1%} | {per_row:.1%} |")


if __name__ == "__main__":
    main()
