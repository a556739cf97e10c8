"""Scheduling and resume: run every cell not yet done, searching first where the suite asks for it; record
failures, never stop the suite for one.

Cells (and the search processes of a study) are tasks on an engine: this process, or Dask workers. Whatever
runs them, this module is the one writer: it stores each record, its predictions, scores and weights, and
logs the cell's MLflow run, from what the task returned.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import BenchError
from harness.core.faults import stop_point
from harness.records.record import SearchSummary
from harness.records.store import ResultStore
from harness.run.device import resolve_device, visible_gpus
from harness.run.engine import DaskEngine, SerialEngine, Task, dask_engine
from harness.run.execute import CellOutcome, failed_record, run_cell
from harness.run.stores import redact
from harness.run.tracking import Group, Recording, RecordingGroup, Run, Tracker, scalars
from harness.suite.cell import Cell
from harness.tasks import families

Log = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run, not what: none of this changes a cell's numbers (nor its config hash)."""

    force: bool = False  # redo cells that are already done
    progress: bool = True  # progress bars on a terminal
    save_weights: bool = False  # keep what each cell trained under <out>/weights/<config hash>
    storage: str | None = None  # Optuna storage of searches (default <out>/optuna.db)
    device: str = "auto"
    workers: int | None = None  # a local Dask cluster of this many worker processes
    scheduler: str | None = None  # or the address of a running Dask scheduler


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
    options: RunOptions | None = None,
    *,
    log: Log = print,
    tracker: Tracker | None = None,
) -> RunSummary:
    """Run ``cells``, writing one record each under ``out_dir/cells``.

    A record is written only when its cell has finished (atomically), so a killed run leaves no partial
    record and the next run picks up the cells that have none. A group of cells with a ``search`` first runs
    (or continues) its study, then trains the best parameters once per seed. Bad input (``BenchError``) stops
    the run; any other error fails only its cell (or, for a search, its group). One run at a time may use
    ``out_dir``. ``tracker`` logs to MLflow (default: off).
    """
    options = options or RunOptions()
    store = ResultStore(out_dir)
    with store.lock():
        store.clean_partial()
        with _engine(options, log) as engine:
            return _SuiteRun(cells, store, options, engine, tracker or Tracker(None), log).run()


@contextmanager
def _engine(options: RunOptions, log: Log) -> Iterator[SerialEngine | DaskEngine]:
    """This process, or a Dask cluster (stopped at the end, Ctrl-C included); the device is checked where the
    cells will run, before any work."""
    device = resolve_device(options.device)
    if options.workers is None and options.scheduler is None:
        yield SerialEngine(log, options.device)
        return
    # Local workers split this machine's GPUs, one each (CUDA_VISIBLE_DEVICES): whichever CUDA device was
    # named, a worker's is its ``cuda``. A remote cluster's workers resolve the device themselves.
    gpus = visible_gpus() if device.type == "cuda" and options.scheduler is None else None
    engine = dask_engine(log, "cuda" if gpus else options.device, options.workers, options.scheduler, gpus)
    try:
        engine.client.run(resolve_device, engine.device)
        yield engine
    finally:
        engine.close()


@dataclass
class _Group:
    """A cell group in flight: its tracking parent, the search that chose its values, what is still running."""

    cells: list[Cell]
    positions: list[int]
    parent: Group
    searched: SearchSummary | None = None
    storage: str = ""  # the study's storage URL, when searched
    searches_left: int = 0
    search_failed: bool = False
    cells_left: int = 0
    cells_failed: int = 0


class _SuiteRun:
    """One pass over a suite's cells on one engine."""

    def __init__(
        self, cells: list[Cell], store: ResultStore, options: RunOptions, engine: Any, tracker: Tracker, log: Log
    ) -> None:
        self.cells, self.store, self.options, self.engine = cells, store, options, engine
        self.tracker, self.log = tracker, log
        self.summary = RunSummary()
        self.bar = _Bar(engine, self.summary) if options.progress and isinstance(engine, DaskEngine) else None

    def run(self) -> RunSummary:
        position = itertools.count(1)
        for cells in groups(self.cells):
            group = _Group(cells, [next(position) for _ in cells], self.tracker.group(cells[0]))
            if cells[0].search is not None:
                self._submit_search(group)
            else:
                self._submit_cells(group, cells)
        with self.bar or _nothing():
            for task, result in self.engine.results():
                kind, group = task.about
                if kind == "search":
                    self._search_done(group, result)
                else:
                    self._cell_done(group, task.args[0], result)
        return self.summary

    # -- cells

    def _submit_cells(self, group: _Group, cells: list[Cell]) -> None:
        live = self.engine.live_tracking
        for cell, position in zip(cells, group.positions, strict=True):
            self.summary.hashes.append(cell.config_hash)
            prefix = f"[{position}/{len(self.cells)}] {cell.label} ({cell.config_hash})"
            if not self.options.force and self.store.is_done(cell.config_hash):
                self.summary.skipped += 1
                self.log(f"{prefix}: done earlier, skipped")
                continue
            # per-step bars only when cells run one at a time in this process; MLflow live only here too
            args = (cell, self.engine.device, self.options.progress and live, self.options.save_weights)
            args += (group.parent if live else None, prefix)
            group.cells_left += 1
            self.engine.submit(Task(f"cell-{cell.config_hash}", position, cell_task, args, ("cell", group)))
        if group.cells_left == 0:
            group.parent.finish()  # nothing to run: a parent reopened by a search closes again

    def _cell_done(self, group: _Group, cell: Cell, result: Any) -> None:
        if isinstance(result, BaseException):  # its worker died too often (Dask gave up on it)
            outcome, tracking = CellOutcome(failed_record(cell, result)), Recording()
            self.log(f"{cell.label} ({cell.config_hash}): FAILED: {outcome.record.error}")
        else:
            outcome, tracking = result
        outcome.record.search = group.searched
        stop_point("cell-done")
        # The tracking run ends before the record is written: the record marks the cell done, so a kill between
        # the two redoes the cell (replacing its run) rather than leave a done cell with an unfinished run.
        run = tracking if isinstance(tracking, Run) else _replayed(tracking, group.parent.seed(cell))
        _log_cell(run, outcome)
        stop_point("tracked")
        self.store.write(outcome.record, outcome.predictions, outcome.scores, outcome.weights, outcome.generations)
        failed = outcome.record.status != "done"
        self.summary.ran += 1
        self.summary.failed += failed
        group.cells_failed += failed
        group.cells_left -= 1
        if group.cells_left == 0:
            group.parent.finish("FAILED" if group.cells_failed else "FINISHED")

    # -- searches

    def _submit_search(self, group: _Group) -> None:
        from harness.run.study import start_study

        first = group.cells[0]
        url = group.storage = self._storage_url(first)
        self.log(f"[search] {first.group_label}: study in {redact(url)}")
        start_study(first, url)
        # the study's trials spread over the workers: one search process per worker, each takes the next trial
        group.searches_left = max(1, min(self.engine.workers, first.search.trials or math.inf))
        for i in range(group.searches_left):
            tracking = group.parent if self.engine.live_tracking else RecordingGroup()
            args = (first, url, tracking, self.engine.device, self.options.progress and self.engine.live_tracking)
            task = Task(f"search-{first.group_hash}-{i}", group.positions[0], search_task, args, ("search", group))
            self.engine.submit(task)

    def _storage_url(self, cell: Cell) -> str:
        from harness.run.study import default_storage, is_single_machine

        given = self.options.storage or cell.search.storage
        url = given or default_storage(self.store.root)
        if "://" not in url:
            url = str(Path(url).resolve())  # a journal file: the same path on every worker of a shared file system
        if self.engine.remote and is_single_machine(url):
            where = "--storage" if given is None else f"storage {redact(url)!r}"
            raise BenchError(
                f"{where}: searches on remote Dask workers need a study storage they all reach: a journal file "
                "on a shared file system (--storage /shared/path/study.log) or a database URL "
                "(--storage postgresql://…); SQLite is for one machine"
            )
        return url

    def _search_done(self, group: _Group, result: Any) -> None:
        from harness.run.study import search_outcome

        tracking, error = (None, f"{type(result).__name__}: {result}") if isinstance(result, BaseException) else result
        if isinstance(tracking, RecordingGroup):
            tracking.replay(group.parent)
        group.searches_left -= 1
        if error is not None:
            self._search_failed(group, error)
        if group.searches_left > 0 or group.search_failed:
            return
        first = group.cells[0]
        try:
            outcome = search_outcome(first, group.storage)
        except BenchError:
            raise
        except Exception as failure:
            self._search_failed(group, f"{type(failure).__name__}: {failure}")
            return
        summary, counts = outcome.summary, outcome.summary.trials
        self.log(
            f"[search] {first.group_label}: best trial {summary.best_trial} ({summary.metric} "
            f"{summary.best_value:.4f}); {counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} "
            f"failed; {summary.steps} training steps, {summary.steps_saved} saved by pruning"
        )
        group.parent.params({f"best.{k}": str(v) for k, v in outcome.params.items()})
        group.parent.metrics(scalars(summary.model_dump(), "search/") | scalars(counts, "search/trials_"))
        group.searched = outcome.summary
        self._submit_cells(group, [c.with_params(outcome.params) for c in group.cells])

    def _search_failed(self, group: _Group, message: str) -> None:
        """One failed search process fails the group: every cell gets a failed record (once)."""
        if group.search_failed:
            return
        group.search_failed = True
        self.log(f"[search] {group.cells[0].group_label}: FAILED: {message}")
        for cell in group.cells:
            self.summary.hashes.append(cell.config_hash)
            self.store.write(failed_record(cell, message))
            self.summary.ran, self.summary.failed = self.summary.ran + 1, self.summary.failed + 1
        group.parent.finish("FAILED")


def cell_task(
    cell: Cell, device: str, progress: bool, save_weights: bool, tracking: Group | None, prefix: str, log: Log
) -> tuple[CellOutcome, Run | Recording]:
    """Run one cell wherever the engine put it. A cell that fails on its own (a non-finite loss, out of memory)
    becomes a failed record here, so it is recorded once and never retried; only bad input (``BenchError``)
    escapes. With ``tracking`` (in the driver's process) the MLflow run is live, else a ``Recording``."""
    run = tracking.seed(cell) if tracking is not None else Recording()
    log(f"{prefix}: running")
    try:
        outcome = run_cell(cell, device, progress, log, save_weights, [run])
    except BenchError:
        run.finish("FAILED")
        raise
    except Exception as error:
        outcome = CellOutcome(failed_record(cell, error))
        log(f"{prefix}: FAILED: {outcome.record.error}")
    else:
        record = outcome.record
        log(f"{prefix}: test {record.metrics.headline} {record.test_score:.4f} in {record.cost.wall_seconds:.0f}s")
    return outcome, run


def search_task(
    cell: Cell, url: str, tracking: Group | RecordingGroup, device: str, progress: bool, log: Log
) -> tuple[Group | RecordingGroup, str | None]:
    """One process's share of a study: trials until the study's budget is spent. A search that fails on its own
    returns its error (the driver fails the group's cells); bad input raises."""
    from harness.run.study import run_search

    try:
        return run_search(cell, url, tracking, device, progress, log), None
    except BenchError:
        raise
    except Exception as error:
        return tracking, f"{type(error).__name__}: {error}"


def _replayed(recording: Recording, run: Run) -> Run:
    recording.replay(run)
    return run


def _log_cell(run: Run, outcome: CellOutcome) -> None:
    """The cell's test metrics, costs and files on its tracking run, which then ends."""
    record = outcome.record
    test = record.metrics.test
    run.metrics(scalars(test, "test/") | scalars(record.cost.model_dump(exclude_none=True), "cost/"))
    artifacts: dict[str, Any] = {"record.json": record.dumped()}
    if outcome.predictions is not None:
        artifacts["predictions.json"] = outcome.predictions
    if outcome.generations is not None:
        artifacts["generations.json"] = outcome.generations
    artifacts |= families.get(record.row.task_type).tables(test)
    run.artifacts(artifacts)
    run.finish("FINISHED" if record.status == "done" else "FAILED")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class _Bar:
    """One bar over the suite's cells when they run in parallel: done / running / failed and an ETA."""

    def __init__(self, engine: DaskEngine, summary: RunSummary) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.engine, self.summary = engine, summary
        self.progress = Progress(
            TextColumn("cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not sys.stderr.isatty(),
        )
        self.task = self.progress.add_task("cells", total=None, status="")
        engine.on_change = self.update

    def update(self) -> None:
        counts = self.engine.counts
        status = f"{len(counts.running)} running on {self.engine.workers} workers, {self.summary.failed} failed"
        self.progress.update(self.task, total=counts.submitted, completed=counts.finished, status=status)

    def __enter__(self) -> _Bar:
        self.progress.start()
        self.update()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
