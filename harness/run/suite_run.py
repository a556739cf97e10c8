"""`bench run` as one function: a suite file → its cells (of the chosen seeds and labels) → run → report settings
and the leaderboard of the cells that ran. The command line only parses, calls this and prints."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path

from harness.analysis.report import default_report_dir, write_report
from harness.core.errors import BenchError
from harness.records.store import ResultStore
from harness.run.adaptive import run_adaptive
from harness.run.device import resolve_device
from harness.run.runner import RunOptions, RunSummary, run_cells
from harness.run.tracking import Tracker, default_uri
from harness.suite.cell import Cell
from harness.suite.expand import expand, load_suite
from harness.suite.schema import Suite, seed_values


def run_suite(
    suite_path: Path,
    options: RunOptions,
    *,
    profile: str | None = None,
    seeds: list[int] | None = None,
    only: list[str] | None = None,
    out_dir: Path | None = None,
    report_dir: Path | None = None,
    tracking_uri: str | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[RunSummary, list[Path], Path]:
    """Run every cell of the suite not yet done and write its report; returns the run's summary, the report's
    files and the results folder. ``tracking_uri`` "" turns MLflow tracking off; None: the folder's own."""
    if options.workers is not None and options.scheduler is not None:
        raise BenchError("--workers starts a local cluster, --scheduler uses a running one: give one of them")
    resolve_device(options.device)  # before anything is loaded; workers check again where they run
    suite = load_suite(suite_path)
    cells = matching(of_seeds(suite, expand(suite, suite_path, profile), seeds), only)
    results = out_dir or Path("results") / suite.name
    tracker = Tracker(None if tracking_uri == "" else (tracking_uri or default_uri(results)), results)
    settings = suite.report.model_copy(update={"plan": suite.plan, "suite": suite.name})
    store = ResultStore(results)

    def run(batch: list[Cell]) -> RunSummary:
        return run_cells(batch, results, options, log=log, tracker=tracker)

    adaptive = suite.plan is not None and not seeds  # `--seed n` runs the seeds it names, decided or not
    summary = run_adaptive(cells, settings, store, run, log) if adaptive else run(cells)
    ran = set(summary.hashes)  # not records left in the folder by an earlier version of the suite
    store.write_settings(settings)
    records = [r for r in store.records() if r.config_hash in ran]
    return summary, write_report(records, report_dir or default_report_dir(results), settings), results


def of_seeds(suite: Suite, cells: list[Cell], seeds: list[int] | None) -> list[Cell]:
    """The cells of ``--seed`` (all when none is given); a seed the suite does not have is an error."""
    if not seeds:
        return cells
    unknown = sorted(set(seeds) - set(seed_values(suite.seeds)))
    if unknown:
        raise BenchError(f"--seed {unknown[0]}: not a seed of suite {suite.name!r} (seeds: {seed_values(suite.seeds)})")
    return [c for c in cells if c.seed in seeds]


def matching(cells: list[Cell], patterns: list[str] | None) -> list[Cell]:
    """The cells whose label matches one of the ``--only`` globs (all when none is given); a glob that matches no
    cell is an error, so a typo never runs an empty suite."""
    if not patterns:
        return cells
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(cell.label, pattern) for cell in cells):
            raise BenchError(
                f"--only {pattern!r}: matches none of the {len(cells)} cells (labels look like {cells[0].label})"
            )
    return [cell for cell in cells if any(fnmatch.fnmatchcase(cell.label, p) for p in patterns)]
