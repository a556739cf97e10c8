"""Hyperparameter search: one Optuna study per cell group, resumable after a crash.

A study lives in an Optuna storage (SQLite under the results folder by default). Trials train on the
training split and are scored on validation only (``train_only`` drops the test split); the per-epoch
validation value feeds the pruner. A trial that did not end on its own — its process died (the next run fails
it: at once if it ran on this host, else when its heartbeat is stale) or was stopped with Ctrl-C — is retried
with its parameters, and the trials after it draw what they would have drawn without the interruption. A
trial that failed on its own (a non-finite loss) is not retried.
"""

from __future__ import annotations

import datetime
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.core.atomic import pid_alive
from harness.core.errors import BenchError, CellFailed, dependency_error
from harness.core.faults import stop_point
from harness.records.record import SearchSummary
from harness.run.execute import train_only
from harness.run.stores import create_study_store, redact
from harness.run.tracking import Group, RecordingGroup
from harness.run.train import Observer
from harness.suite.cell import Cell
from harness.suite.search_space import Search
from harness.tasks import families

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}
MAX_RETRIES = 3  # a trial whose process dies this often in a row is not tried again
ADVICE = "check it is reachable and writable (--storage names another)"
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
        try:
            if "://" not in url:
                return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
            create_study_store(url)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=search.heartbeat_seconds,
                grace_period=search.grace_seconds,
                heartbeat_stale_trial_callback=_retry,  # called for the trials this process failed as stale
            )
        except BenchError:
            raise
        except Exception as e:  # a bad URL, a missing driver, a server that does not answer
            raise dependency_error(f"search storage {redact(url)}", e, ADVICE) from None


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Failures of the study's storage (locked, full, gone) as one line naming it."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        raise dependency_error(f"search storage {redact(url)}", e, ADVICE) from None


@dataclass
class Outcome:
    """What a finished study chose, and what it cost."""

    params: dict[str, Any]
    summary: SearchSummary


class _Pruning(Observer):
    """Reports each epoch's validation value to the trial and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_evaluation(self, entry: dict, steps: int, total_steps: int) -> None:
        self.trial.set_user_attr("steps", steps)
        self.trial.set_user_attr("planned_steps", total_steps)
        self.trial.report(entry["validation"][self.metric], entry["evaluation"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after validation {entry['evaluation']} (step {entry['step']})")


def study_name(cell: Cell) -> str:
    return f"{cell.suite}-{cell.group_hash}"


def open_study(cell: Cell, storage_url: str) -> optuna.Study:
    """The study of ``cell``'s group, created (with its storage's tables) on first use. The driver opens it
    before any worker does: processes that create one SQLite schema at once collide."""
    search: Search = cell.search
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial instead (not its tracebacks)
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


def start_study(cell: Cell, storage_url: str) -> None:
    """The driver's opening of a group's study, before any search process: creates it (and its storage), and
    retries the trials an earlier run left interrupted."""
    with storage_errors(storage_url):
        retry_interrupted(open_study(cell, storage_url))


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

    def objective(trial: optuna.Trial) -> float:
        stop_point("trial-made")
        trial.set_user_attr("host", HOST)  # the owner: a later run on this host checks it is still alive
        trial.set_user_attr("pid", os.getpid())
        params = search.suggest(trial)
        trial_cell = cell.with_params(params).with_seed(search.seed)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        # The run ends once the study has recorded the trial (``_settle``), so the two never disagree.
        run = tracking.trial(trial.number, name, trial_cell)
        try:
            result = train_only(trial_cell, device, progress, lambda _: None, [_Pruning(trial, metric), run])
        except optuna.TrialPruned as pruned:
            log(f"  trial {trial.number} ({shown}): {pruned}")
            run.flush()
            raise
        except BaseException as error:  # the study fails the trial whatever the error: its run fails now
            log(f"  trial {trial.number} ({shown}): failed: {type(error).__name__}: {error}")
            if isinstance(error, Exception):  # failed on its own, not stopped (Ctrl-C): not retried
                trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            run.finish("FAILED")
            raise
        value = result.validation[metric]
        run.metrics({"objective": value})
        run.flush()
        stop_point("trial-end")
        log(f"  trial {trial.number} ({shown}): validation {metric} {value:.4f} (best epoch {result.best_epoch})")
        return value

    with storage_errors(storage_url):
        study = open_study(cell, storage_url)
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
                time.sleep(search.heartbeat_seconds)  # the budget is in flight: wait for it to end or go stale
                continue
            study.optimize(objective, n_trials=1, catch=(CellFailed,))
    return tracking


def search_outcome(cell: Cell, storage_url: str) -> Outcome:
    """What the finished study of ``cell``'s group chose, and what it cost."""
    metric = cell.search.metric or families.get(cell.task.type).headline
    with storage_errors(storage_url):
        return _outcome(open_study(cell, storage_url), study_name(cell), storage_url, metric)


def _settle(
    study: optuna.Study, tracking: Group | RecordingGroup, name: str, grace_seconds: float
) -> list[FrozenTrial]:
    """Fail the trials whose process is gone and queue their retries, and end the tracking runs of finished
    trials as the study recorded them. Gone: a stale heartbeat (any host); or, on this host, a
    process that no longer exists (at once, and for storages without heartbeats); or no sign of life at all
    (killed between the study creating the trial and the trial starting: no heartbeat, no owner) for longer
    than the grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()  # Optuna stamps trials in local time
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("host")
        orphan = owner is None and (now - trial.datetime_start).total_seconds() > grace_seconds
        if orphan or (owner == HOST and not _alive(trial.user_attrs.get("pid"))):
            try:
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # its own process (or another run's check) finished it meanwhile
            _retry(study, study._storage.get_trial(trial._trial_id))
    trials = study.get_trials(deepcopy=False)
    tracking.settle_trials(name, {t.number: RUN_STATUS[t.state] for t in trials if t.state in RUN_STATUS})
    return trials


def retry_interrupted(study: optuna.Study) -> None:
    """Queue a retry of every trial that failed without failing on its own and has none yet: stopped by Ctrl-C,
    or failed as gone by a run killed before it queued the retry. Only the driver calls this, before any search
    process of the study starts, so no two processes queue the same retry."""
    trials = study.get_trials(deepcopy=False)
    retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
    for trial in trials:
        if trial.state == TrialState.FAIL and "error" not in trial.user_attrs and trial.number not in retried:
            _retry(study, trial)


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue ``trial``'s parameters as a new trial (not its owner: that is whoever runs the retry)."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRIES:
        return
    retry = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        system_attrs={"failed_trial": history[0], "retry_history": history},
    )
    study.add_trial(retry)


def _alive(pid: Any) -> bool:
    """Whether the trial's owner (a pid on this host) still runs; a pid of unknown form is not ours to judge."""
    return pid_alive(pid) if isinstance(pid, int) else True


def _spent_minutes(trials: list[FrozenTrial]) -> float:
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials if t.datetime_complete) / 60


def _outcome(study: optuna.Study, name: str, storage_url: str, metric: str) -> Outcome:
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if not completed:
        raise CellFailed(f"search {name}: no trial completed ({len(trials)} pruned or failed)")
    best = study.best_trial
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    summary = SearchSummary(
        study=name,
        storage=redact(storage_url),
        metric=f"validation {metric}",
        best_trial=best.number,
        best_value=best.value,
        params=best.params,
        trials={s: sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned", "fail")},
        steps=sum(t.user_attrs.get("steps", 0) for t in trials),
        # what pruned trials would have cost had they run every epoch
        steps_saved=sum(t.user_attrs.get("planned_steps", 0) - t.user_attrs.get("steps", 0) for t in pruned),
    )
    return Outcome(best.params, summary)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
