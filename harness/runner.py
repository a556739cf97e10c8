"""Scheduling and resume: run every cell not yet done, record failures, never stop the suite for one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.cell import failed_record, run_cell
from harness.errors import BenchError
from harness.results import ResultStore
from harness.suite import Cell


@dataclass
class RunSummary:
    ran: int = 0
    skipped: int = 0
    failed: int = 0


def run_cells(
    cells: list[Cell],
    out_dir: Path,
    *,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    save_weights: bool = False,
) -> RunSummary:
    """Run ``cells`` in order, writing one record each under ``out_dir/cells``.

    A record is written only when its cell has finished (atomically), so a killed run leaves no partial
    record and the next run picks up the cells that have none. Bad input (``BenchError``) stops the run;
    any other error fails only its cell. ``save_weights`` keeps each cell's trained weights (the method's
    own: LoRA, adapters, prompts, or the whole model) under ``out_dir/weights/<config hash>``.
    """
    store = ResultStore(out_dir)
    store.clean_partial()
    summary = RunSummary()
    for i, cell in enumerate(cells, 1):
        prefix = f"[{i}/{len(cells)}] {cell.label} ({cell.config_hash})"
        if not force and store.is_done(cell.config_hash):
            summary.skipped += 1
            log(f"{prefix}: done earlier, skipped")
            continue
        log(f"{prefix}: running")
        try:
            weights = out_dir / "weights" / cell.config_hash if save_weights else None
            record, predictions = run_cell(cell, progress, log, weights)
        except BenchError:
            raise
        except Exception as error:
            record, predictions = failed_record(cell, error), None
            summary.failed += 1
            log(f"{prefix}: FAILED: {record.error}")
        else:
            test = record.metrics["test"][record.metrics["headline"]]
            log(f"{prefix}: test {record.metrics['headline']} {test:.4f} in {record.cost['wall_seconds']:.0f}s")
        summary.ran += 1
        store.write(record, predictions)
    return summary
