"""The results folder: one record per cell (``record.py``), written atomically beside its predictions; the store
that finds, writes and tabulates them."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from harness.core.atomic import remove_temporaries, write_bytes_atomic, write_json_atomic
from harness.core.errors import BenchError
from harness.core.faults import stop_point
from harness.records.record import Record, read_record
from harness.records.settings import ReportSettings


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
        return path.is_file() and read_record(path).status == "done"

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
        write_json_atomic(self.record_path(record.config_hash), record.dumped())

    def write_settings(self, settings: ReportSettings) -> None:
        """The suite's report settings (baseline row, check rule), for `bench report` and `bench baseline`."""
        write_json_atomic(self.root / "report.json", settings.model_dump(mode="json"))

    def settings(self) -> ReportSettings:
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
        return [read_record(p) for p in sorted(self.cells.glob("*.json"))]


def to_frame(records: list[Record]) -> pd.DataFrame:
    """One row per record with the axes, headline metrics and costs as columns."""
    rows = []
    for r in records:
        rows.append(
            r.row.model_dump(exclude={"label"})
            | {
                "suite": r.suite,
                "config_hash": r.config_hash,
                "status": r.status,
                "tuning": r.tuning,
                "metric": r.metrics.headline,
                "test": r.test_score,
                "validation": r.validation_score,
                "converged": r.metrics.converged,
                "trainable_params": r.cost.trainable_params,
                "train_seconds": r.cost.train_seconds,
                "tokens_per_second": r.cost.tokens_per_second,
                "peak_rss_mb": r.cost.peak_rss_mb,
                "load_entropy": r.routing_stats.load_entropy,
                "busiest_expert_share": r.routing_stats.busiest_expert_share,
                "collapsed": r.routing_stats.collapsed,
                "measures": r.measures,
                "train_size": r.metrics.sizes.get("train"),
                "error": r.error,
            }
        )
    return pd.DataFrame(rows)
