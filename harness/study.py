"""Hyperparameter search: one Optuna study per cell group, resumable after a crash.

A study lives in an Optuna storage (SQLite under the results folder by default). Trials train on the
training split and are scored on validation only (``train_only`` drops the test split); the per-epoch
validation value feeds the pruner. A process that dies mid-trial leaves that trial RUNNING; the next run
fails it (at once if it ran on this host, else when its heartbeat is stale) and retries its parameters.
"""

from __future__ import annotations

import datetime
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from harness.cell import train_only
from harness.errors import BenchError, CellFailed
from harness.search_space import Search
from harness.suite import Cell
from harness.tasks import families
from harness.tracking import Group, RecordingGroup
from harness.train import Observer

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HOST = socket.gethostname()


def default_storage(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'optuna.db').resolve()}"


def is_single_machine(url: str) -> bool:
    """SQLite lives in one machine's file system: workers elsewhere would each get their own empty study."""
    return url.startswith("sqlite")


def open_storage(url: str, search: Search) -> optuna.storages.BaseStorage:
    """An RDB URL (``sqlite:///…``, ``postgresql://…``) with heartbeats, or a journal file path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
        try:
            if "://" not in url:
                return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=search.heartbeat_seconds,
                grace_period=search.grace_seconds,
                heartbeat_stale_trial_callback=retry,
            )
        except Exception as e:  # a bad URL, a missing driver, a server that does not answer
            raise BenchError(f"search storage {redact(url)!r}: cannot open it ({type(e).__name__}: {e})") from None


def redact(url: str) -> str:
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://")[0] + "://…"


@dataclass
class Outcome:
    """What a finished study chose, and what it cost."""

    params: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


class _Pruning(Observer):
    """Reports each epoch's validation value to the trial and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_epoch(self, entry: dict, steps: int, total_steps: int) -> None:
        self.trial.set_user_attr("steps", steps)
        self.trial.set_user_attr("planned_steps", total_steps)
        self.trial.report(entry["validation"][self.metric], entry["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {entry['epoch']}")


def study_name(cell: Cell) -> str:
    return f"{cell.suite}-{cell.group_hash}"


def open_study(cell: Cell, storage_url: str) -> optuna.Study:
    """The study of ``cell``'s group, created (with its storage's tables) on first use. The driver opens it
    before any worker does: processes that create one SQLite schema at once collide."""
    search: Search = cell.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    study = optuna.create_study(
        study_name=study_name(cell),
        storage=open_storage(storage_url, search),
        sampler=search.make_sampler(),
        pruner=search.pruner_for(),
        direction=search.direction,
        load_if_exists=True,
    )
    study.set_user_attr("label", cell.group_label)
    return study


def run_search(
    cell: Cell,
    storage_url: str,
    tracking: Group | RecordingGroup,
    device: str = "auto",
    progress: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Group | RecordingGroup:
    """Run (or continue) the study of ``cell``'s group until its budget is spent; several processes may do so at
    once against one storage, each taking the next trial. Returns ``tracking`` (what it recorded travels back
    from a worker)."""
    search: Search = cell.search
    metric = search.metric or families.get(cell.task.type).headline
    name = study_name(cell)
    study = open_study(cell, storage_url)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", HOST)  # the owner: a later run on this host checks it is still alive
        trial.set_user_attr("pid", os.getpid())
        params = search.suggest(trial)
        trial_cell = cell.with_params(params).with_seed(search.seed)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        run = tracking.trial(trial.number, name, trial_cell)
        try:
            result = train_only(trial_cell, device, progress, lambda _: None, [_Pruning(trial, metric), run])
        except optuna.TrialPruned as pruned:
            log(f"  trial {trial.number} ({shown}): {pruned}")
            run.finish("KILLED")
            raise
        except BaseException as error:
            log(f"  trial {trial.number} ({shown}): failed: {type(error).__name__}: {error}")
            run.finish("FAILED")
            raise
        value = result.validation[metric]
        run.metrics({"objective": value})
        run.finish()
        log(f"  trial {trial.number} ({shown}): validation {metric} {value:.4f} (best epoch {result.best_epoch})")
        return value

    while True:
        trials = _settle(study, tracking, name, search.grace_seconds)
        states = [t.state for t in trials]
        done = sum(s in FINISHED for s in states)
        running, waiting = states.count(TrialState.RUNNING), states.count(TrialState.WAITING)
        if done >= (search.trials or math.inf) or _spent_minutes(trials) >= (search.timeout_minutes or math.inf):
            break
        if states.count(TrialState.FAIL) > 2 * (search.trials or 10) + 3:
            raise CellFailed(f"search {name}: {states.count(TrialState.FAIL)} trials failed")
        if not waiting and search.trials is not None and done + running >= search.trials:
            time.sleep(search.heartbeat_seconds)  # the budget is in flight: wait for those trials to end or go stale
            continue
        study.optimize(objective, n_trials=1, catch=(CellFailed,))
    return tracking


def search_outcome(cell: Cell, storage_url: str) -> Outcome:
    """What the finished study of ``cell``'s group chose, and what it cost."""
    metric = cell.search.metric or families.get(cell.task.type).headline
    return _outcome(open_study(cell, storage_url), study_name(cell), storage_url, metric)


def _settle(
    study: optuna.Study, tracking: Group | RecordingGroup, name: str, grace_seconds: float
) -> list[FrozenTrial]:
    """Fail the trials whose process is gone, queue their parameters for a retry, and mark their tracking runs
    failed. Gone: a stale heartbeat (any host); or, on this host, a process that no longer exists (at once,
    and for storages without heartbeats); or no sign of life at all (killed between the study creating the
    trial and the trial starting: no heartbeat, no owner) for longer than the grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    now = datetime.datetime.now()  # Optuna stamps trials in local time
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("host")
        orphan = owner is None and (now - trial.datetime_start).total_seconds() > grace_seconds
        if orphan or (owner == HOST and not _alive(trial.user_attrs.get("pid"))):
            try:
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # its own process (or another run's check) finished it meanwhile
            retry(study, study._storage.get_trial(trial._trial_id))
    trials = study.get_trials(deepcopy=False)
    tracking.fail_trials(name, [t.number for t in trials if t.state == TrialState.FAIL])
    return trials


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spent_minutes(trials: list[FrozenTrial]) -> float:
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials if t.datetime_complete) / 60


def _outcome(study: optuna.Study, name: str, storage_url: str, metric: str) -> Outcome:
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if not completed:
        raise CellFailed(f"search {name}: no trial completed ({len(trials)} pruned or failed)")
    best = study.best_trial
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    summary = {
        "study": name,
        "storage": redact(storage_url),
        "metric": f"validation {metric}",
        "best_trial": best.number,
        "best_value": best.value,
        "params": best.params,
        "trials": {s: sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned", "fail")},
        "steps": sum(t.user_attrs.get("steps", 0) for t in trials),
        # what pruned trials would have cost had they run every epoch
        "steps_saved": sum(t.user_attrs.get("planned_steps", 0) - t.user_attrs.get("steps", 0) for t in pruned),
    }
    return Outcome(best.params, summary)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
