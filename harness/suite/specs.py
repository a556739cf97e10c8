"""What a suite and a cell are made of: training settings, profiles, the method / routing / task specs resolved
through their registries, and the regime (the whole training split, a training size, or k examples per class)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    create_model,
)
from pydantic_core import PydanticCustomError

from harness.core.config import Strict, tagged_union
from harness.evaluation.attack import AttackParams
from harness.evaluation.probes import probe_name, probes
from harness.methods import methods
from harness.models.backbones import backbones, is_valid_backbone
from harness.routing import routers
from harness.tasks import builtin_tasks
from harness.tasks.base import TaskSpec

Precision = Literal["fp32", "bf16", "fp16"]  # autocast dtypes; run/device.py maps them to torch
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class TrainConfig(Strict):
    """Training budget and optimiser settings; every field here is part of the config hash.

    ``epochs`` (and ``max_steps``, if set) is the cap. With ``patience`` the run stops earlier, once that many
    validations in a row improved the headline by no more than ``min_delta``, and the record says it converged;
    a run that reaches the cap says it did not."""

    epochs: PositiveInt = 3
    max_steps: PositiveInt | None = None
    batch_size: PositiveInt = 32
    eval_batch_size: PositiveInt = 128
    eval_every: PositiveInt | None = None  # validate every N optimiser steps; None: after every epoch
    patience: PositiveInt | None = None  # None: no early stopping, train to the cap
    min_delta: Annotated[float, Field(ge=0, lt=1)] = 0.0  # headline units: 0.002 is 0.2 points
    lr: PositiveFloat = 5e-5
    schedule: Literal["linear", "constant"] = "linear"  # after warm-up: decay to 0 at the cap, or constant
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_grad_norm: PositiveFloat = 1.0
    max_length: Annotated[int, Field(ge=8, le=4096)] = 128
    train_subset: PositiveInt | None = None
    validation_subset: PositiveInt | None = None
    group_by_length: bool = True
    precision: Precision = "fp32"  # autocast dtype of forward passes; fp16 adds a gradient scaler

    def identity(self) -> dict[str, Any]:
        """The hashed form: fields added after records existed are left out at their neutral default, so those
        records keep their hashes (fp32, no early stopping, per-epoch validation is what every earlier cell ran)."""
        return self.model_dump(exclude={k for k, v in _NEUTRAL.items() if getattr(self, k) == v})


_NEUTRAL = {
    "precision": "fp32",
    "max_steps": None,
    "eval_every": None,
    "patience": None,
    "min_delta": 0.0,
    "schedule": "linear",
}


# A profile overrides any subset of the training fields, e.g. {train_subset: 4000, epochs: 2}.
Profile = create_model(  # type: ignore[call-overload]
    "Profile",
    __base__=Strict,
    **{name: (field.annotation | None, None) for name, field in TrainConfig.model_fields.items()},
)


def _named(key: str, registry: Any) -> Any:
    """Accept ``full`` for ``{name: full}``; an unknown name gets "did you mean" and the allowed list."""

    def check(value: Any) -> Any:
        value = {key: value} if isinstance(value, str) else value
        if isinstance(value, dict) and isinstance(value.get(key), str) and value[key] not in registry:
            raise ValueError(registry.unknown_message(value[key]))
        return value

    return check


def _builtin_task(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value not in builtin_tasks:
        raise ValueError(builtin_tasks.unknown_message(value) + "; or a mapping with name, type, format, files")
    return builtin_tasks.get(value)


def _known_backbone(name: str) -> str:
    if not is_valid_backbone(name):
        raise ValueError(backbones.unknown_message(name) + "; or a hub id 'org/name' or a local folder")
    return name


def unique(values: list) -> list:
    seen: list = []
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate entry {v!r}")
        seen.append(v)
    return values


MethodSpec = Annotated[
    tagged_union([cls.Params for _, cls in methods.items()], "name"), BeforeValidator(_named("name", methods))
]
RoutingSpec = Annotated[
    tagged_union([cls.Params for _, cls in routers.items()], "strategy"),
    BeforeValidator(_named("strategy", routers)),
]
ProbeSpec = Annotated[
    tagged_union([cls.Params for _, cls in probes.items()], "kind"), BeforeValidator(_named("kind", probes))
]
TaskRef = Annotated[TaskSpec, BeforeValidator(_builtin_task)]
Backbone = Annotated[str, AfterValidator(_known_backbone)]


def _distinct_names(found: list) -> list:
    names = [probe_name(p) for p in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two probes measure the same thing: {', '.join(names)}")
    return found


class Evaluate(Strict):
    """What a trained cell measures on its test set beyond the clean score (docs/statistics-and-findings.md):
    robustness ``probes``, an adversarial ``attack``, the train–validation gap (``overfit``). Calibration and
    inference speed come with every trained cell; this block is part of the config hash only when it asks for
    something."""

    probes: Annotated[list[ProbeSpec], AfterValidator(_distinct_names)] = Field(default_factory=list)
    attack: AttackParams | None = None  # DeepWordBug on classification cells
    overfit: bool = False  # score a training sample at the best step and at the end, beside validation

    def identity(self) -> dict[str, Any]:
        """The hashed form: empty when nothing is asked for."""
        return {} if self == Evaluate() else self.model_dump()


# -- regimes: each answers the questions the rest of the code asks of a regime, so nobody branches on its kind


class FullData(Strict):
    """The whole training split (``full`` in a suite)."""

    few_shot: ClassVar[bool] = False
    shots: ClassVar[None] = None
    label: ClassVar[str] = "full"  # the leaderboard's regime column

    def cells(self, seed: int) -> list[FullData]:
        """The cell regimes this suite regime expands to for ``seed``."""
        return [self]

    def training(self, base: TrainConfig) -> TrainConfig:
        return base

    def identity(self) -> Any:
        return "full"

    def row_identity(self) -> Any:
        return "full"

    def data_seed(self, seed: int) -> int:
        """The seed that samples the cell's data (subsets, a carved validation set)."""
        return seed

    def unit(self, seed: int) -> str:
        """What varies between a row's cells: here only the training seed."""
        return str(seed)

    def row_part(self) -> str:
        """The regime in a row's label."""
        return "full"

    def path_part(self) -> str:
        """The regime in a cell's label."""
        return "full"


class Shots(Strict):
    """A few-shot regime: k examples per class (per entity type) for train and for validation."""

    few_shot: ClassVar[bool] = True
    shots: PositiveInt
    # None: one split per training seed, drawn with that seed (LM-BFF); a list: every split × every seed
    split_seeds: Annotated[list[int], Field(min_length=1), AfterValidator(unique)] | None = None
    train: Profile | None = None  # training overrides for this regime (a few examples want more epochs)

    @property
    def label(self) -> str:
        return f"{self.shots}-shot"

    def cells(self, seed: int) -> list[FewShot]:
        return [FewShot(shots=self.shots, split_seed=s) for s in (self.split_seeds or [seed])]

    def training(self, base: TrainConfig) -> TrainConfig:
        """A few-shot set is its own size, so subset sizes do not apply; then the regime's own overrides."""
        overrides = self.train.model_dump(exclude_unset=True) if self.train is not None else {}
        return base.model_copy(update={"train_subset": None, "validation_subset": None, **overrides})


class FewShot(Strict):
    """A cell's few-shot regime: k and the seed that drew its split."""

    few_shot: ClassVar[bool] = True
    shots: PositiveInt
    split_seed: int

    @property
    def label(self) -> str:
        return f"{self.shots}-shot"

    def identity(self) -> Any:
        return self.model_dump()

    def row_identity(self) -> Any:
        """A row's spread is over its splits as over its seeds: the split seed is not part of the row."""
        return {"shots": self.shots}

    def data_seed(self, seed: int) -> int:
        return self.split_seed

    def unit(self, seed: int) -> str:
        return f"{seed}/{self.split_seed}"

    def row_part(self) -> str:
        return f"{self.shots}shot"

    def path_part(self) -> str:
        return f"{self.row_part()}-split{self.split_seed}"


class Sized(Strict):
    """A learning-curve point: ``train_size`` examples of the training split, drawn by the cell's seed, trained and
    selected as usual (validation as the profile sets it). Several sizes in one suite are one axis: each size is
    its own row, and the report plots score against size per method and routing."""

    few_shot: ClassVar[bool] = False
    shots: ClassVar[None] = None
    train_size: PositiveInt
    train: Profile | None = None  # training overrides for this size (a hundred examples may want a higher cap)

    @property
    def label(self) -> str:
        return f"n={self.train_size}"

    def cells(self, seed: int) -> list[Sized]:
        return [self]

    def training(self, base: TrainConfig) -> TrainConfig:
        overrides = self.train.model_dump(exclude_unset=True) if self.train is not None else {}
        return base.model_copy(update={**overrides, "train_subset": self.train_size})

    def identity(self) -> Any:
        return self.model_dump(exclude_none=True)  # the overrides are in the cell's training settings as well

    def row_identity(self) -> Any:
        return self.identity()

    def data_seed(self, seed: int) -> int:
        return seed

    def unit(self, seed: int) -> str:
        return str(seed)

    def row_part(self) -> str:
        return f"n{self.train_size}"

    def path_part(self) -> str:
        return self.row_part()


REGIME_TAGS = ("regime:full", "regime:shots", "regime:size")


def _full(value: Any) -> Any:
    if isinstance(value, FullData) or value == "full":
        return FullData()
    raise PydanticCustomError("literal_error", "Input should be 'full'")


def _regime_kind(value: Any) -> str:
    if isinstance(value, str | FullData):
        return REGIME_TAGS[0]
    sized = isinstance(value, Sized) or (isinstance(value, dict) and "train_size" in value)
    return REGIME_TAGS[2] if sized else REGIME_TAGS[1]


def _regime(model: type) -> Any:
    """``full``, a training size or a few-shot mapping; the tag decides which, so a bad mapping reports its own
    fields only."""
    full = Annotated[FullData, BeforeValidator(_full), PlainSerializer(lambda _: "full"), Tag(REGIME_TAGS[0])]
    shots, sized = Annotated[model, Tag(REGIME_TAGS[1])], Annotated[Sized, Tag(REGIME_TAGS[2])]
    return Annotated[full | shots | sized, Discriminator(_regime_kind)]


Regime = _regime(Shots)
CellRegime = _regime(FewShot)
