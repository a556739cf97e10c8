"""Experiment tracking in MLflow: an experiment per suite, a parent run per cell group (the cell without its
seed), and nested runs under it per search trial and per seed.

Runs are found again by their tags, so a re-run reuses a group's parent run and replaces (never duplicates)
the run of a cell it redoes. ``Tracker(None, …)`` is tracking turned off: every call does nothing.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.core.errors import dependency_error
from harness.run.provenance import environment
from harness.run.stores import open_tracking_store, redact, sqlite_file
from harness.run.train import Observer
from harness.suite.cell import Cell

KIND, GROUP, CONFIG, STUDY, TRIAL = "bench.kind", "bench.group", "bench.config_hash", "bench.study", "bench.trial"
FLUSH_EVERY = 500  # per-step metrics go to the store in batches (one request each), not one call per step


def default_uri(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 1e-4}}`` as ``{"train.lr": "0.0001"}`` (MLflow parameters are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numeric entries of a metrics mapping (nested tables such as per-type scores are left out)."""
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}


class Run(Observer):
    """One MLflow run; as an observer of the training loop it logs per-step and per-epoch metrics."""

    def __init__(self, client: Any, run_id: str | None) -> None:
        self.client, self.run_id = client, run_id
        self._pending: list[Any] = []
        self.clock_ms: int | None = None  # set while replaying a Recording: metrics keep the time they were taken

    def on_step(self, step: int, values: dict[str, float]) -> None:
        self.metrics({f"train/{k}": v for k, v in values.items()}, step)
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def on_evaluation(self, entry: dict, steps: int, total_steps: int) -> None:
        values = scalars(entry["validation"], "validation/") | scalars(entry.get("routing", {}), "routing/")
        self.metrics(values | {"train/loss_since_validation": entry["train_loss"]}, entry["step"])
        self.flush()

    def metrics(self, values: dict[str, float], step: int = 0) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = self.clock_ms or int(time.time() * 1000)
        self._pending += [Metric(key, value, now, step) for key, value in values.items()]

    def params(self, values: dict[str, str]) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Param

        known = self.client.get_run(self.run_id).data.params  # a reopened parent already has them
        fresh = [Param(k, v[:6000]) for k, v in values.items() if k not in known]
        for i in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[i : i + 100])

    def artifacts(self, named: dict[str, Any]) -> None:
        """Upload each entry as a JSON file of its name."""
        if self.run_id is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in named.items():
                (Path(tmp) / name).write_text(json.dumps(content, indent=1, default=float))
            self.client.log_artifacts(self.run_id, tmp)

    def finish(self, status: str = "FINISHED") -> None:
        """``FINISHED``, ``FAILED`` or ``KILLED`` (a pruned trial)."""
        if self.run_id is None:
            return
        self.flush()
        self.client.set_terminated(self.run_id, status)

    def flush(self) -> None:
        """Send the metrics logged so far."""
        if self._pending:
            self.client.log_batch(self.run_id, metrics=self._pending)
            self._pending = []


class Recording(Observer):
    """Stands in for a ``Run`` where no tracking store can be reached (a Dask worker): it keeps every call with
    its time, travels back with the task's result, and ``replay`` makes the same calls on a real run, so the
    driver is the one writer of the tracking store."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, tuple]] = []

    def _keep(self, name: str, *args: Any) -> None:
        self.calls.append((int(time.time() * 1000), name, args))

    def on_step(self, step: int, values: dict[str, float]) -> None:
        self._keep("on_step", step, values)

    def on_evaluation(self, entry: dict, steps: int, total_steps: int) -> None:
        self._keep("on_evaluation", entry, steps, total_steps)

    def metrics(self, values: dict[str, float], step: int = 0) -> None:
        self._keep("metrics", values, step)

    def finish(self, status: str = "FINISHED") -> None:
        self._keep("finish", status)

    def flush(self) -> None:
        self._keep("flush")

    def replay(self, run: Run) -> None:
        for at_ms, name, args in self.calls:
            run.clock_ms = at_ms
            getattr(run, name)(*args)
        run.clock_ms = None


class RecordingGroup:
    """A ``Group`` for a search on a Dask worker: each trial's run is a ``Recording``; ``replay`` logs them under
    the real parent run, in the order the trials ran."""

    def __init__(self) -> None:
        self.trials: list[tuple[int, str, Cell, Recording]] = []
        self.settled: list[tuple[str, dict[int, str]]] = []

    def trial(self, number: int, study: str, cell: Cell) -> Recording:
        recording = Recording()
        self.trials.append((number, study, cell, recording))
        return recording

    def settle_trials(self, study: str, statuses: dict[int, str]) -> None:
        self.settled.append((study, statuses))

    def replay(self, group: Group) -> None:
        for number, study, cell, recording in self.trials:
            recording.replay(group.trial(number, study, cell))
        for study, statuses in self.settled:
            group.settle_trials(study, statuses)


class Group(Run):
    """The parent run of a cell group, and the factory of its nested runs. It is opened (found again by its
    tag, else created) only when something is logged under it, so a re-run that skips every cell of a group
    leaves the store as it was."""

    def __init__(self, tracker: Tracker | None, cell: Cell | None) -> None:
        super().__init__(tracker.client if tracker else None, None)
        self.tracker, self.cell = tracker, cell

    def _open(self) -> bool:
        if self.run_id is None and self.tracker is not None:
            self.run_id = self.tracker.open_group(self.cell)
            super().params(flatten({k: v for k, v in self.cell.hashed_fields().items() if k != "seed"}))
        return self.run_id is not None

    def params(self, values: dict[str, str]) -> None:
        if self._open():
            super().params(values)

    def metrics(self, values: dict[str, float], step: int = 0) -> None:
        if self._open():
            super().metrics(values, step)

    def seed(self, cell: Cell) -> Run:
        """The run of one seed's final training; an earlier run of the same cell (killed, or redone with
        --force) is deleted first, so each cell has one run."""
        for old in self._children(f"tags.`{CONFIG}` = '{cell.config_hash}' AND tags.`{KIND}` = 'seed'"):
            self.client.delete_run(old.info.run_id)
        return self._child(f"seed {cell.seed}", cell, {KIND: "seed", CONFIG: cell.config_hash})

    def trial(self, number: int, study: str, cell: Cell) -> Run:
        return self._child(f"trial {number}", cell, {KIND: "trial", STUDY: study, TRIAL: str(number)})

    def settle_trials(self, study: str, statuses: dict[int, str]) -> None:
        """End the runs of trials the study has finished (``statuses``: trial number → MLflow status) that still
        say RUNNING: a trial's run ends only after the study has recorded the trial, so a kill between the two
        leaves a run that the next settling ends as the study says (a trial failed because its process died
        included)."""
        for run in self._children(f"tags.`{STUDY}` = '{study}' AND attributes.status = 'RUNNING'"):
            status = statuses.get(int(run.data.tags[TRIAL]))
            if status is not None:
                self.client.set_terminated(run.info.run_id, status)

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run; one left RUNNING by a killed run (all of whose cells were then done) ends too."""
        if self.run_id is None and self.tracker is not None and self.tracker.has_store():
            self.run_id = self.tracker.find_group(self.cell, status="RUNNING")
        super().finish(status)

    def _children(self, query: str) -> list[Any]:
        if not self._open():
            return []
        return self.client.search_runs(
            [self.tracker.experiment(self.cell.suite)],
            f"tags.`mlflow.parentRunId` = '{self.run_id}' AND {query}",
            max_results=1000,
        )

    def _child(self, name: str, cell: Cell, tags: dict[str, str]) -> Run:
        if not self._open():
            return Run(None, None)
        tags = self.tracker.tags_of(cell) | tags | {"mlflow.parentRunId": self.run_id}
        experiment = self.tracker.experiment(cell.suite)
        run = Run(self.client, self.client.create_run(experiment, run_name=name, tags=tags).info.run_id)
        run.params(flatten(cell.hashed_fields()))
        return run


class Tracker:
    """Connects to ``uri`` (None: tracking off) and keeps one experiment per suite."""

    def __init__(self, uri: str | None, artifact_root: Path | None = None) -> None:
        self.client = None
        if uri is None:
            return
        for name in ("mlflow", "alembic"):  # their INFO lines on creating a store are not the user's business
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = uri
        self.client = _Guarded(uri, artifact_root or Path("."))
        self.local = not uri.startswith(("http://", "https://", "databricks"))
        self.artifact_root = artifact_root
        env = environment()
        self.tags = {"mlflow.source.git.commit": str(env["git"]), "bench.git_dirty": str(env["git_dirty"])}
        self.tags |= {f"bench.version.{k}": str(v) for k, v in env.items() if k not in ("git", "git_dirty")}
        self.tags.pop("bench.version.data_fingerprint")
        self._experiments: dict[str, str] = {}

    def group(self, cell: Cell) -> Group:
        """The parent run of ``cell``'s group (opened when first used)."""
        return Group(self if self.client is not None else None, cell)

    def tags_of(self, cell: Cell) -> dict[str, str]:
        return self.tags | {"bench.suite": cell.suite, GROUP: cell.group_hash}

    def open_group(self, cell: Cell) -> str:
        """The id of the group's parent run: an earlier run's, reopened, or a new one."""
        found = self.find_group(cell)
        if found is not None:
            self.client.update_run(found, status="RUNNING")
            return found
        tags = self.tags_of(cell) | {KIND: "group"}
        return self.client.create_run(self.experiment(cell.suite), run_name=cell.group_label, tags=tags).info.run_id

    def has_store(self) -> bool:
        """Whether the store exists yet (a local file may not: looking for runs in it would create it)."""
        path = sqlite_file(self.uri)
        return path is None or path.exists()

    def find_group(self, cell: Cell, status: str | None = None) -> str | None:
        """The id of the group's parent run (with this status, if given), if there is one."""
        query = f"tags.`{GROUP}` = '{cell.group_hash}' AND tags.`{KIND}` = 'group'"
        query += f" AND attributes.status = '{status}'" if status else ""
        found = self.client.search_runs([self.experiment(cell.suite)], query, max_results=1)
        return found[0].info.run_id if found else None

    def experiment(self, suite: str) -> str:
        if suite not in self._experiments:
            found = self.client.get_experiment_by_name(suite)
            if found is not None:
                self._experiments[suite] = found.experiment_id
            else:
                # a local store keeps artifacts beside it, not in ./mlruns of whatever folder bench ran from
                location = (self.artifact_root / "mlartifacts").resolve().as_uri() if self.local else None
                self._experiments[suite] = self.client.create_experiment(suite, artifact_location=location)
        return self._experiments[suite]


class _Guarded:
    """The MLflow client, connected on first use (MLflow creates a missing store as its client starts: here it
    is made whole first, by the run that holds the results folder), whose store's failures (unreachable,
    locked, full, refused) reach the user as one line naming the store."""

    def __init__(self, uri: str, artifact_root: Path) -> None:
        self._uri, self._artifact_root = uri, artifact_root
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            from mlflow.exceptions import MlflowException
            from sqlalchemy.exc import SQLAlchemyError

            try:
                return getattr(self._connected(), name)(*args, **kwargs)
            except (MlflowException, SQLAlchemyError, OSError) as e:
                advice = "check it is reachable and writable, or run with --no-tracking"
                raise dependency_error(f"tracking store {redact(self._uri)}", e, advice) from None

        return call

    def _connected(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            open_tracking_store(self._uri, self._artifact_root)
            self._client = MlflowClient(tracking_uri=self._uri)
        return self._client
