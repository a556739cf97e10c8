"""The result record: the one contract between the running half (suite → cell → train) and the reading half
(records → leaderboard, report, baseline, check). Typed and versioned: a record that does not match (hand-edited,
or written by another schema version) is refused with the file and the field, never read as NaN.

A record carries its row's identity and labels (``Row``), fixed when its cell was expanded, so the reading half
groups, labels and pairs records without knowing what a method, a routing strategy or a task is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from harness.core.errors import BenchError
from harness.records.measures import known_names, measure

SCHEMA_VERSION = 2
Status = Literal["done", "failed"]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Row(_Schema):
    """Which leaderboard row a cell belongs to, and how that row is labelled."""

    key: str  # the same for every seed and split of the row and whatever values a search chose: `bench check`'s key
    label: str  # the cell's label without seed and split, e.g. conll2003/minilm-l6/lora/none/16shot
    task: str
    task_type: str
    backbone: str
    method: str  # the method as a column label, e.g. "lora r=4"
    method_name: str
    routing: str  # the routing strategy as a column label, e.g. "random every=2"
    routing_strategy: str
    inference: str  # the routed model's inference mode; "-" for strategies without one
    regime: str  # "full" or "16-shot"
    unit: str  # what varies between the row's cells: the seed, or "seed/split" for a few-shot split


class Metrics(_Schema):
    headline: str  # the task's headline metric, a key of ``test`` and ``validation``
    test: dict[str, Any] = {}
    validation: dict[str, Any] = {}  # at the selected validation; empty for methods that select nothing
    best_epoch: int | None = None
    best_step: int | None = None  # the optimiser step of the selected validation
    converged: bool | None = None  # stopped on patience (True) or at the cap (False); None: nothing trained
    test_source: str | None = None
    sizes: dict[str, int] = {}
    carve_removed: int | None = None  # training examples dropped so that no validation example overlaps them
    measures: dict[str, float] = {}  # beyond the headline, by name (``measures.MEASURES``): ece, robust.<probe>.drop …

    @field_validator("measures")
    @classmethod
    def _known_measures(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [name for name in value if measure(name) is None]
        if unknown:
            raise ValueError(f"unknown measure {unknown[0]!r} (known: {known_names()})")
        return value


class Evaluation(_Schema):
    """One point of the validation curve."""

    epoch: int
    evaluation: int | None = None  # 1, 2, … (None in records written before validation could come mid-epoch)
    step: int | None = None  # optimiser steps taken when it was measured
    train_loss: float  # mean training loss since the previous validation
    validation: dict[str, Any]
    routing: dict[str, Any] = {}  # the strategy's telemetry headline for the epoch so far (load entropy …)


class RoutingStats(_Schema):
    """The strategy's telemetry of the last training epoch; empty for dense models."""

    placement: str | None = None
    load_entropy: float | None = None
    max_entropy: float | None = None
    busiest_expert_share: float | None = None
    collapsed: bool | None = None
    dropped_fraction: float | None = None
    balance_loss: float | None = None
    skip_rate: list[float] | None = None
    layers: dict[str, dict[str, Any]] = {}  # per routed layer: expert load, entropy, tokens, dropped share


class Cost(_Schema):
    trainable_params: int | None = None
    total_params: int | None = None
    train_seconds: float | None = None
    predict_seconds: float | None = None
    steps: int | None = None
    tokens_per_second: float | None = None
    padding_fraction: float | None = None
    wall_seconds: float | None = None
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    test_examples_per_second: float | None = None  # the test pass, in the cell's inference mode
    torch_threads: int | None = None


class SearchSummary(_Schema):
    """The study that chose a cell's hyperparameters, and what it cost."""

    study: str
    storage: str
    metric: str
    best_trial: int
    best_value: float
    params: dict[str, Any]
    trials: dict[str, int]  # complete, pruned, fail
    steps: int
    steps_saved: int  # what pruned trials would have cost had they run every epoch

    @property
    def tuning(self) -> str:
        return f"search ({self.trials['complete'] + self.trials['pruned']} trials)"


class Record(_Schema):
    schema_version: Literal[2]
    suite: str
    config_hash: str
    status: Status
    label: str
    row: Row
    config: dict[str, Any]  # the cell's hashed fields, to reproduce it; the reading half never looks inside
    metrics: Metrics
    history: list[Evaluation] = []
    routing_stats: RoutingStats = RoutingStats()
    cost: Cost = Cost()
    search: SearchSummary | None = None
    env: dict[str, Any] = {}  # where the number came from: versions, commit, device, data fingerprint
    error: str | None = None

    @model_validator(mode="after")
    def _done_has_its_headline(self) -> Record:
        if self.status == "done" and not isinstance(self.metrics.test.get(self.metrics.headline), int | float):
            raise ValueError(f"a done record needs metrics.test.{self.metrics.headline} (its headline), a number")
        return self

    @property
    def test_score(self) -> float:
        """The headline test score (0-1), NaN for a failed cell."""
        return float(self.metrics.test[self.metrics.headline]) if self.status == "done" else math.nan

    @property
    def validation_score(self) -> float:
        """The headline validation score at the selected epoch, NaN where nothing was selected."""
        return float(self.metrics.validation.get(self.metrics.headline, math.nan))

    @property
    def measures(self) -> dict[str, float]:
        """Every measure beyond the score by name (``records.measures``): ``metrics.measures`` and, from the costs
        (a time varies between runs, so it is no metric), ``infer.examples_per_second``."""
        speed = self.cost.test_examples_per_second
        return self.metrics.measures | ({"infer.examples_per_second": speed} if speed is not None else {})

    @property
    def tuning(self) -> str:
        """How the hyperparameters were chosen: by hand (``-``) or by a search of so many trials."""
        return "-" if self.search is None else self.search.tuning

    def dumped(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def read_record(path: Path) -> Record:
    """A record file; anything else is one line naming the file and the first field that does not match."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise BenchError(f"{path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise BenchError(f"{path}: not JSON ({e})") from None
    version = data.get("schema_version", 1) if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise BenchError(
            f"{path}: schema_version: {version!r}, but this routebench reads records of schema {SCHEMA_VERSION}"
            + (f"; convert the folder with `bench upgrade {path.parent.parent}`" if version == 1 else "")
        )
    try:
        return Record.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(record)"
        raise BenchError(f"{path}: {field}: {first['msg'].removeprefix('Value error, ')}") from None
