"""Does the default profile order the rows as the full profile does? Reads two results folders of the same suite
(the default profile's, and the full profile's, typically one seed: `bench run SUITE --profile full --seed 1
--out results/<suite>-full --only ...`), or the `leaderboard.csv` of their committed reports, and prints, per
task, Spearman's and Kendall's rank correlation over the rows both ran and every pair whose order swaps, with the
full profile's gap against the seed noise of a difference (a swap inside the noise does not change a conclusion).
The full profile's rows may come from several places (suites that share cells, run into other folders): a row
is taken from the first place that has it.

    .venv/bin/python benchmarks/profile_agreement.py results/ner results/ner-full
    .venv/bin/python benchmarks/profile_agreement.py report/ner/leaderboard.csv report/ner-full/leaderboard.csv
    .venv/bin/python benchmarks/profile_agreement.py report/ner/leaderboard.csv report/ner-full/leaderboard.csv \
        report/lit-thor-full/leaderboard.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from harness.analysis.agreement import agreement
from harness.analysis.leaderboard import AXES, leaderboards, read_leaderboards
from harness.records.store import ResultStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("small", type=Path, help="default (small) profile: results folder or report leaderboard.csv")
    parser.add_argument("full", type=Path, nargs="+", help="full profile: results folders or leaderboard.csv files")
    args = parser.parse_args()
    small, full = _tables(args.small), _merged([_tables(path) for path in args.full])
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


def _merged(sources: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Per task, the rows of every source, each row (all leaderboard axes) from the first source that has it."""
    tasks = {task for source in sources for task in source}
    return {
        task: pd.concat([s[task] for s in sources if task in s]).drop_duplicates(AXES).reset_index(drop=True)
        for task in tasks
    }


if __name__ == "__main__":
    main()
