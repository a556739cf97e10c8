"""Does the default profile order the rows as the full profile does? Reads two results folders of the same suite
(the default profile's, and the full profile's, typically one seed: `bench run SUITE --profile full --seed 1
--out results/<suite>-full --only ...`), or the `leaderboard.csv` of their committed reports, and prints, per
task, Spearman's and Kendall's rank correlation over the rows both ran and every pair whose order swaps, with the
full profile's gap against the seed noise of a difference (a swap inside the noise does not change a conclusion).

    .venv/bin/python benchmarks/profile_agreement.py results/ner results/ner-full
    .venv/bin/python benchmarks/profile_agreement.py report/ner/leaderboard.csv report/ner-full/leaderboard.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from harness.analysis.agreement import agreement
from harness.analysis.leaderboard import leaderboards, read_leaderboards
from harness.records.store import ResultStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("small", type=Path, help="default (small) profile: results folder or report leaderboard.csv")
    parser.add_argument("full", type=Path, help="full profile: results folder or report leaderboard.csv")
    args = parser.parse_args()
    small, full = (_tables(path) for path in (args.small, args.full))
    for found in agreement(small, full):
        print(
            f"{found.task}: {found.rows} rows ran at both budgets; Spearman {found.spearman:.3f}, "
            f"Kendall {found.kendall:.3f}; {len(found.swaps)} pairs swap"
        )
        if found.swaps:
            print("| ahead at full | behind at full | full gap | default gap | seed noise | beyond noise |")
            print("| --- | --- | --- | --- | --- | --- |")
            for s in found.swaps:
                print(
                    f"| {s.ahead} | {s.behind} | {s.full_gap:+.2f} | {s.small_gap:+.2f} | {s.noise:.2f} | "
                    f"{'yes' if s.matters else 'no'} |"
                )
        print()


def _tables(path: Path) -> dict[str, pd.DataFrame]:
    return read_leaderboards(path) if path.is_file() else leaderboards(ResultStore(path).records())


if __name__ == "__main__":
    main()
