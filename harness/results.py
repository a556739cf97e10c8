"""Records: one JSON per cell, written atomically; the store that finds, writes and tabulates them."""

from __future__ import annotations

import fcntl
import os
import platform
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

import harness
from harness.atomic import remove_temporaries, write_bytes_atomic, write_json_atomic
from harness.errors import BenchError
from harness.faults import stop_point
from harness.methods import describe as describe_method
from harness.routing import describe
from harness.suite import regime_label

Status = Literal["done", "failed"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str
    config_hash: str
    status: Status
    label: str
    config: dict[str, Any]
    metrics: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    routing_stats: dict[str, Any] = {}  # per-layer expert load of the last training epoch, entropy, collapse
    cost: dict[str, Any] = {}
    search: dict[str, Any] = {}  # the study that chose this cell's hyperparameters, and what it cost
    env: dict[str, Any] = {}
    error: str | None = None


def environment(data_fingerprint: str | None = None) -> dict[str, Any]:
    """Where a number came from: harness version, git commit and dirty flag, package versions, data."""
    repo = Path(harness.__file__).resolve().parent.parent
    env: dict[str, Any] = {"harness": harness.__version__, "python": platform.python_version()}
    env.update(_git(repo))
    for package in ("torch", "transformers", "datasets", "peft", "seqeval"):
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[package] = None
    env["data_fingerprint"] = data_fingerprint
    return env


def _git(repo: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"git": None, "git_dirty": None}
    return {"git": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


class ResultStore:
    """``DIR/cells/<config_hash>.json`` records, ``DIR/predictions/<config_hash>.json`` test predictions,
    ``DIR/scores/<config_hash>.json`` their per-example scores and ``DIR/generations/<config_hash>.json`` a
    prompt baseline's raw answers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cells = self.root / "cells"

    def record_path(self, config_hash: str) -> Path:
        return self.cells / f"{config_hash}.json"

    def predictions_path(self, config_hash: str) -> Path:
        return self.root / "predictions" / f"{config_hash}.json"

    def generations_path(self, config_hash: str) -> Path:
        return self.root / "generations" / f"{config_hash}.json"

    def weights_path(self, config_hash: str) -> Path:
        return self.root / "weights" / config_hash

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one run: a second ``bench run`` on it refuses at once, naming the holder. The
        kernel drops the lock when its process dies, so a killed run never blocks the next one."""
        path = self.root / ".lock"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")  # noqa: SIM115 (held until the run ends)
        except OSError as e:
            raise BenchError(f"{path}: cannot create it ({e.strerror or e}); --out must be a writable folder") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise BenchError(f"{self.root}: in use by {holder}; wait for it to end or stop it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"bench run (pid {os.getpid()} on {socket.gethostname()})")
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_done(self, config_hash: str) -> bool:
        path = self.record_path(config_hash)
        return path.is_file() and self._read(path).status == "done"

    def scores_path(self, config_hash: str) -> Path:
        return self.root / "scores" / f"{config_hash}.json"

    def write(
        self,
        record: Record,
        predictions: list[Any] | None = None,
        scores: list[Any] | None = None,
        weights: dict[str, bytes] | None = None,
        generations: list[str] | None = None,
    ) -> None:
        # weights, predictions, scores and generations first: a record never points at missing files
        for name, content in (weights or {}).items():
            write_bytes_atomic(self.weights_path(record.config_hash) / name, content)
            stop_point("weights")
        if predictions is not None:
            write_json_atomic(self.predictions_path(record.config_hash), predictions)
        if scores is not None:
            write_json_atomic(self.scores_path(record.config_hash), scores)
        if generations is not None:
            write_json_atomic(self.generations_path(record.config_hash), generations)
        stop_point("record")
        write_json_atomic(self.record_path(record.config_hash), record.model_dump(mode="json"))

    def write_settings(self, settings: Any) -> None:
        """The suite's report settings (baseline row, check rule), for `bench report` and `bench baseline`."""
        write_json_atomic(self.root / "report.json", settings.model_dump(mode="json"))

    def settings(self) -> Any:
        from harness.suite import ReportSettings

        path = self.root / "report.json"
        if not path.is_file():
            return ReportSettings()
        try:
            return ReportSettings.model_validate_json(path.read_text())
        except (ValidationError, ValueError) as e:
            raise BenchError(f"{path}: not the report settings `bench run` writes ({str(e).splitlines()[0]})") from None

    def clean_partial(self) -> int:
        """Remove temporary files left by a process killed mid-write (the caller holds the folder); returns how
        many."""
        return remove_temporaries(self.root, recursive=True, only_dead=False)

    def records(self) -> list[Record]:
        if not self.cells.is_dir():
            raise BenchError(f"{self.root}: no records (expected {self.cells}/<config_hash>.json)")
        return [self._read(p) for p in sorted(self.cells.glob("*.json"))]

    @staticmethod
    def _read(path: Path) -> Record:
        try:
            return Record.model_validate_json(path.read_text())
        except OSError as e:
            raise BenchError(f"{path}: cannot read it ({e.strerror or e})") from None
        except (ValidationError, ValueError) as e:
            raise BenchError(f"{path}: not a valid record ({str(e).splitlines()[0]})") from None


def unit_of(config: dict[str, Any]) -> str:
    """What varies between a row's cells: the training seed, and for a few-shot regime the split seed too. Two
    rows are paired over the units they share."""
    regime = config["regime"]
    split = regime.get("split_seed") if isinstance(regime, dict) else None
    return str(config["seed"]) if split is None else f"{config['seed']}/{split}"


def to_frame(records: list[Record]) -> pd.DataFrame:
    """One row per record with the axes, headline metrics and costs as columns."""
    rows = []
    for r in records:
        config = r.config
        test = r.metrics.get("test", {})
        rows.append(
            {
                "suite": r.suite,
                "config_hash": r.config_hash,
                "status": r.status,
                "task": config["task"]["name"],
                "task_type": config["task"].get("type"),
                "method_name": config["method"]["name"],
                "routing_strategy": config["routing"]["strategy"],
                "backbone": config["backbone"],
                "method": describe_method(config["method"]),
                "routing": describe(config["routing"]),
                "inference": config["routing"].get("inference", "-"),
                "regime": regime_label(config["regime"]),
                "tuning": _tuning(r.search),
                "seed": config["seed"],
                "unit": unit_of(config),
                "metric": r.metrics.get("headline"),
                "test": test.get(r.metrics.get("headline", ""), float("nan")),
                "validation": r.metrics.get("validation", {}).get(r.metrics.get("headline", ""), float("nan")),
                "trainable_params": r.cost.get("trainable_params"),
                "train_seconds": r.cost.get("train_seconds"),
                "tokens_per_second": r.cost.get("tokens_per_second"),
                "peak_rss_mb": r.cost.get("peak_rss_mb"),
                "load_entropy": r.routing_stats.get("load_entropy"),
                "collapsed": r.routing_stats.get("collapsed"),
                "error": r.error,
            }
        )
    return pd.DataFrame(rows)


def _tuning(search: dict[str, Any]) -> str:
    """How a cell's hyperparameters were chosen: by hand (``-``) or by a search of so many trials."""
    if not search:
        return "-"
    return f"search ({search['trials']['complete'] + search['trials']['pruned']} trials)"
