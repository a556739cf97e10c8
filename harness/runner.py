"""Scheduling and resume: run every cell not yet done, searching first where the suite asks for it; record
failures, never stop the suite for one."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.cell import failed_record, run_cell
from harness.errors import BenchError
from harness.results import ResultStore
from harness.suite import Cell
from harness.tracking import Group, Tracker, scalars


@dataclass
class RunSummary:
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    hashes: list[str] = field(default_factory=list)  # the cells' config hashes, searched ones as trained


def groups(cells: list[Cell]) -> list[list[Cell]]:
    """Cells that differ only in their training seed, in order of first appearance."""
    by_group: dict[str, list[Cell]] = {}
    for cell in cells:
        by_group.setdefault(cell.group_hash, []).append(cell)
    return list(by_group.values())


def run_cells(
    cells: list[Cell],
    out_dir: Path,
    *,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    save_weights: bool = False,
    tracker: Tracker | None = None,
    storage: str | None = None,
) -> RunSummary:
    """Run ``cells`` in order, writing one record each under ``out_dir/cells``.

    A record is written only when its cell has finished (atomically), so a killed run leaves no partial
    record and the next run picks up the cells that have none. A group of cells with a ``search`` first runs
    (or continues) its study, in ``storage`` (an Optuna URL or journal file; default
    ``out_dir/optuna.db``), then trains the best parameters once per seed. Bad input (``BenchError``) stops
    the run; any other error fails only its cell (or, for a search, its group). ``save_weights`` keeps each
    cell's trained weights under ``out_dir/weights/<config hash>``; ``tracker`` logs to MLflow (default: off).
    """
    out_dir.mkdir(parents=True, exist_ok=True)  # the study and tracking stores live here before any record
    store = ResultStore(out_dir)
    store.clean_partial()
    tracker = tracker or Tracker(None)
    summary, position = RunSummary(), itertools.count(1)
    for group in groups(cells):
        parent = tracker.group(group[0])
        searched: dict = {}
        if group[0].search is not None:
            try:
                group, searched = _search(group, out_dir, storage, parent, progress, log)
            except BenchError:
                raise
            except Exception as error:
                log(f"[search] {group[0].group_label}: FAILED: {type(error).__name__}: {error}")
                for cell in group:
                    next(position)
                    summary.hashes.append(cell.config_hash)
                    store.write(failed_record(cell, error))
                    summary.ran, summary.failed = summary.ran + 1, summary.failed + 1
                parent.finish("FAILED")
                continue
        failures = 0
        for cell in group:
            summary.hashes.append(cell.config_hash)
            prefix = f"[{next(position)}/{len(cells)}] {cell.label} ({cell.config_hash})"
            if not force and store.is_done(cell.config_hash):
                summary.skipped += 1
                log(f"{prefix}: done earlier, skipped")
                continue
            log(f"{prefix}: running")
            failures += not _run_one(cell, store, parent, searched, save_weights, progress, log, prefix)
            summary.ran += 1
        summary.failed += failures
        parent.finish("FAILED" if failures else "FINISHED")
    return summary


def _search(
    group: list[Cell], out_dir: Path, storage: str | None, parent: Group, progress: bool, log: Callable[[str], None]
) -> tuple[list[Cell], dict]:
    """The group's cells with the best parameters of its study laid over them, and the study's summary."""
    from harness.study import default_storage, open_storage, redact, run_search

    first = group[0]
    url = storage or first.search.storage or default_storage(out_dir)
    log(f"[search] {first.group_label}: study in {redact(url)}")
    outcome = run_search(first, open_storage(url, first.search), url, parent, progress, log)
    counts = outcome.summary["trials"]
    log(
        f"[search] {first.group_label}: best trial {outcome.summary['best_trial']} "
        f"({outcome.summary['metric']} {outcome.summary['best_value']:.4f}); {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['fail']} failed; {outcome.summary['steps']} training steps, "
        f"{outcome.summary['steps_saved']} saved by pruning"
    )
    parent.params({f"best.{k}": str(v) for k, v in outcome.params.items()})
    parent.metrics(scalars(outcome.summary, "search/") | scalars(counts, "search/trials_"))
    return [cell.with_params(outcome.params) for cell in group], outcome.summary


def _run_one(
    cell: Cell,
    store: ResultStore,
    parent: Group,
    searched: dict,
    save_weights: bool,
    progress: bool,
    log: Callable[[str], None],
    prefix: str,
) -> bool:
    """Run one cell, write its record and its tracking run; False when the cell failed."""
    run = parent.seed(cell)
    try:
        weights = store.root / "weights" / cell.config_hash if save_weights else None
        record, predictions, scores = run_cell(cell, progress, log, weights, [run])
    except BenchError:
        run.finish("FAILED")
        raise
    except Exception as error:
        record, predictions, scores = failed_record(cell, error), None, None
        log(f"{prefix}: FAILED: {record.error}")
    else:
        test = record.metrics["test"][record.metrics["headline"]]
        log(f"{prefix}: test {record.metrics['headline']} {test:.4f} in {record.cost['wall_seconds']:.0f}s")
    record.search = searched
    store.write(record, predictions, scores)
    test = record.metrics.get("test", {})
    run.metrics(scalars(test, "test/") | scalars(record.cost, "cost/"))
    artifacts = {"record.json": store.record_path(cell.config_hash)}
    if predictions is not None:
        artifacts["predictions.json"] = store.predictions_path(cell.config_hash)
    if "per_type" in test:
        artifacts["per_type.json"] = test["per_type"]
    run.artifacts(artifacts)
    run.finish("FINISHED" if record.status == "done" else "FAILED")
    return record.status == "done"
