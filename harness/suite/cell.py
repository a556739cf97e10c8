"""A cell: one point of a suite's cross product, the unit that runs. It knows its hash (an explicit allow-list of
fields), its leaderboard row, and how its record starts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import model_validator

from harness.core.config import Strict
from harness.methods import describe as describe_method
from harness.methods import methods
from harness.records.record import SCHEMA_VERSION, Record, Row, Status
from harness.routing import describe as describe_routing
from harness.suite.search_space import METHOD_PREFIX, Search
from harness.suite.specs import CellRegime, Evaluate, MethodSpec, RoutingSpec, TrainConfig
from harness.tasks.base import TaskSpec


def _digest(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def group_hash(hashed_fields: dict[str, Any]) -> str:
    """A cell's hashed fields without the training seed: the key of its study and tracking parent."""
    return _digest({k: v for k, v in hashed_fields.items() if k != "seed"})


class Cell(Strict):
    """One point of the cross product; ``config_hash`` covers an explicit allow-list of fields."""

    suite: str
    task: TaskSpec
    backbone: str
    method: MethodSpec
    routing: RoutingSpec
    regime: CellRegime
    seed: int
    train: TrainConfig
    data_dir: str
    search: Search | None = None  # set only for methods that train
    evaluate: Evaluate = Evaluate()  # what a trained cell measures beyond its clean score

    @model_validator(mode="after")
    def _one_learning_rate(self) -> Cell:
        """A method with its own learning rate (parameter-efficient methods want larger ones) trains with it: the
        one place where the method's lr and the training settings' lr are reconciled."""
        lr = getattr(self.method, "lr", None)
        if lr is not None and lr != self.train.lr:
            object.__setattr__(self, "train", self.train.model_copy(update={"lr": lr}))
        return self

    @property
    def trains(self) -> bool:
        return methods.get(self.method.name).trains

    def hashed_fields(self) -> dict[str, Any]:
        fields = {
            "task": self.task.identity(),
            "backbone": self.backbone,
            "method": self.method.model_dump(),
            "routing": self.routing.model_dump(),
            "regime": self.regime.identity(),
            "seed": self.seed,
        }
        if self.trains:
            fields["train"] = self.train.identity()
        elif self.train.precision != "fp32":  # of the training settings, a baseline's numbers depend on this only
            fields["precision"] = self.train.precision
        if self.search is not None:  # a searched cell is not the same experiment as a hand-set one
            fields["search"] = self.search.identity()
        if self.trains and self.evaluate.identity():  # its record holds more; cells without it keep their hashes
            fields["evaluate"] = self.evaluate.identity()
        return fields

    @property
    def config_hash(self) -> str:
        return _digest(self.hashed_fields())

    @property
    def group_hash(self) -> str:
        return group_hash(self.hashed_fields())

    def with_params(self, params: dict[str, Any]) -> Cell:
        """This cell with searched values laid over it: ``method.<field>`` keys (and ``lr`` for a method with its
        own learning rate) on the method's parameters, the others on the training settings."""
        own_lr = "lr" in type(self.method).model_fields
        on_method = {k.removeprefix(METHOD_PREFIX): v for k, v in params.items() if k.startswith(METHOD_PREFIX)}
        on_train = {k: v for k, v in params.items() if not k.startswith(METHOD_PREFIX)}
        if own_lr and "lr" in on_train:
            on_method["lr"] = on_train.pop("lr")
        return Cell.model_validate(
            self.model_dump()
            | {
                "method": type(self.method).model_validate(self.method.model_dump() | on_method),
                "train": TrainConfig.model_validate(self.train.model_dump() | on_train),
                "regime": self.regime,
            }
        )

    def with_seed(self, seed: int) -> Cell:
        return self.model_copy(update={"seed": seed})

    @property
    def label(self) -> str:
        return f"{self.group_label}/seed{self.seed}"

    @property
    def group_label(self) -> str:
        return f"{self._row_label()}/{self.regime.path_part()}"

    def _row_label(self) -> str:
        return f"{self.task.name}/{self.backbone}/{self._method_part()}/{self.routing.strategy}"

    def _method_part(self) -> str:
        """The method's name, ``+<rule>`` for a rule other than the default (``majority+word`` beside the
        ``majority`` class floor) and ``+search`` for a searched row beside its hand-set twin: ``--only`` picks each."""
        rule = getattr(self.method, "rule", None)
        ruled = f"+{rule}" if rule is not None and rule != type(self.method).model_fields["rule"].default else ""
        searched = "+search" if self.search is not None else ""
        return f"{self.method.name}{ruled}{searched}"

    def row(self) -> Row:
        """The leaderboard row: the cell without its seed, its few-shot split (the two things seeds vary) and the
        values a search chose (a re-search that picks other values is the same row; the search block stays)."""
        fields = self.hashed_fields() | {"regime": self.regime.row_identity()}
        searched = set(self.search.space) if self.search is not None else set()
        if searched:
            on_method = {k.removeprefix(METHOD_PREFIX) for k in searched if k.startswith(METHOD_PREFIX)}
            on_method |= {"lr"} & searched
            fields["train"] = {k: v for k, v in fields["train"].items() if k not in searched}
            fields["method"] = {k: v for k, v in fields["method"].items() if k not in on_method}
        method, routing = self.method.model_dump(), self.routing.model_dump()
        return Row(
            key=group_hash(fields),
            label=f"{self._row_label()}/{self.regime.row_part()}",
            task=self.task.name,
            task_type=self.task.type,
            backbone=self.backbone,
            method=describe_method(method),
            method_name=self.method.name,
            routing=describe_routing(routing),
            routing_strategy=self.routing.strategy,
            inference=routing.get("inference", "-"),
            regime=self.regime.label,
            unit=self.regime.unit(self.seed),
        )

    def record(self, status: Status, metrics: dict[str, Any], env: dict[str, Any], **fields: Any) -> Record:
        """This cell's record, with its identity filled in; ``fields``: the rest (history, cost, error …)."""
        return Record(
            schema_version=SCHEMA_VERSION,
            suite=self.suite,
            config_hash=self.config_hash,
            status=status,
            label=self.label,
            row=self.row(),
            config=self.hashed_fields(),
            metrics=metrics,
            env=env,
            **fields,
        )
