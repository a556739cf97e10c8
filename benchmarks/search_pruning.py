"""What pruning saves: the same search (space, sampler, seed, trial budget) run with each pruner in turn.

For the first searched cell of a suite, runs its study once per pruner, each in a fresh SQLite storage in
this process, and prints per pruner: trials complete / pruned, training steps summed over all trials, the
best validation score, and wall time; then each pruner's steps as a ratio of ``none``'s.

    .venv/bin/python benchmarks/search_pruning.py --suite suites/search.yaml --pruners median none
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.run.study import run_search, search_outcome
from harness.run.tracking import Tracker
from harness.suite.expand import expand, load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=Path("suites/search.yaml"))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--pruners", nargs="+", default=["median", "none"], choices=["median", "hyperband", "none"])
    args = parser.parse_args()

    cells = [c for c in expand(load_suite(args.suite), args.suite, args.profile) if c.search is not None]
    if not cells:
        raise SystemExit(f"{args.suite}: no cell has a search block")
    cell = cells[0]
    print(f"cell {cell.group_label}: {cell.search.trials} trials, space {', '.join(cell.search.space)}")
    rows = []
    for pruner in args.pruners:
        arm = cell.model_copy(update={"search": cell.search.model_copy(update={"pruner": pruner})})
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'optuna.db'}"
            started = time.perf_counter()
            group = Tracker(None).group(arm)
            run_search(arm, url, group, progress=False, log=print)
            seconds = time.perf_counter() - started
            outcome = search_outcome(arm, url)
        summary = outcome.summary
        rows.append((pruner, summary, seconds))
        print(f"{pruner}: best {summary['metric']} {summary['best_value']:.4f} with {outcome.params}")

    reference = next((s["steps"] for p, s, _ in rows if p == "none"), rows[0][1]["steps"])
    header = ("pruner", "complete", "pruned", "steps", "steps/none", "best val", "wall s")
    print("\n{:<10} {:>8} {:>6} {:>7} {:>10} {:>8} {:>7}".format(*header))
    for pruner, s, seconds in rows:
        t = s["trials"]
        print(
            f"{pruner:<10} {t['complete']:>8} {t['pruned']:>6} {s['steps']:>7} {s['steps'] / reference:>10.2f} "
            f"{s['best_value']:>8.4f} {seconds:>7.0f}"
        )


if __name__ == "__main__":
    main()
