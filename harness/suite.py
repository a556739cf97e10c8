"""Suites: the pydantic schema, YAML with line-numbered errors, profiles, expansion into cells, hashing."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, create_model

from harness.errors import BenchError
from harness.methods import methods
from harness.models import backbones, is_valid_backbone
from harness.routing import routers
from harness.schema import Strict, tagged_union
from harness.tasks import builtin_tasks
from harness.tasks.base import Slug, TaskSpec
from harness.yaml_lines import line_of, load_yaml

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class TrainConfig(Strict):
    """Training budget and optimiser settings; every field here is part of the config hash."""

    epochs: PositiveInt = 3
    batch_size: PositiveInt = 32
    eval_batch_size: PositiveInt = 128
    lr: PositiveFloat = 5e-5
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_grad_norm: PositiveFloat = 1.0
    max_length: Annotated[int, Field(ge=8, le=4096)] = 128
    train_subset: PositiveInt | None = None
    validation_subset: PositiveInt | None = None
    group_by_length: bool = True


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


def _unique(values: list) -> list:
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
TaskRef = Annotated[TaskSpec, BeforeValidator(_builtin_task)]
Regime = Literal["full"]


def _axis(item: Any, default: list | None = None) -> Any:
    unique = AfterValidator(_unique)
    if default is None:
        return Annotated[list[item], Field(min_length=1), unique]
    return Annotated[list[item], Field(min_length=1, default_factory=lambda: list(default)), unique]


class Suite(Strict):
    name: Slug
    description: str = ""
    tasks: _axis(TaskRef)
    backbones: _axis(Annotated[str, AfterValidator(_known_backbone)])
    methods: _axis(MethodSpec, ["full"])
    routing: _axis(RoutingSpec, ["none"])
    regimes: _axis(Regime, ["full"])
    seeds: _axis(int)
    train: TrainConfig = Field(default_factory=TrainConfig)
    profiles: dict[Slug, Profile] = Field(default_factory=dict)
    data_dir: str | None = None


class Cell(Strict):
    """One point of the cross product; ``config_hash`` covers an explicit allow-list of fields."""

    suite: str
    task: TaskSpec
    backbone: str
    method: MethodSpec
    routing: RoutingSpec
    regime: Regime
    seed: int
    train: TrainConfig
    data_dir: str

    def hashed_fields(self) -> dict[str, Any]:
        return {
            "task": self.task.identity(),
            "backbone": self.backbone,
            "method": self.method.model_dump(),
            "routing": self.routing.model_dump(),
            "regime": self.regime,
            "seed": self.seed,
            "train": self.train.model_dump(),
        }

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.hashed_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return (
            f"{self.task.name}/{self.backbone}/{self.method.name}/{self.routing.strategy}/{self.regime}/seed{self.seed}"
        )


def load_suite(path: Path) -> Suite:
    """Parse and validate ``path``; every problem becomes one ``file:line: field: message`` line."""
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise BenchError(f"{path}:1: expected a mapping of suite fields, got {type(data).__name__}")
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise BenchError("\n".join(_describe(err, path, data, lines) for err in e.errors())) from None


def _describe(err: Any, path: Path, data: Any, lines: dict) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "unknown_field":
        loc = (*loc, err["ctx"]["field"])
    shown, node = [], data
    for part in loc:
        if isinstance(node, dict) and part not in node and part in node.values():
            continue  # a discriminated-union tag that pydantic adds to the location
        shown.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    field = "".join(shown).lstrip(".") or "(suite)"
    message = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if (
        err["type"] not in ("missing", "unknown_field")
        and isinstance(given, str | int | float | bool)
        and repr(given) not in message
    ):
        message += f" (got {given!r})"
    return f"{path}:{line_of(lines, loc)}: {field}: {message}"


def _has(node: Any, part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and 0 <= part < len(node)


def resolve_profile(suite: Suite, profile: str | None) -> TrainConfig:
    """The base ``train`` block with the named profile's fields laid over it (``default`` if defined)."""
    if profile is None:
        profile = "default" if "default" in suite.profiles else None
    if profile is None:
        return suite.train
    if profile not in suite.profiles:
        known = ", ".join(suite.profiles) or "none defined"
        raise BenchError(f"suite {suite.name!r} has no profile {profile!r} (profiles: {known})")
    return suite.train.model_copy(update=suite.profiles[profile].model_dump(exclude_unset=True))


def data_dir_for(suite: Suite, suite_path: Path) -> Path:
    """Relative task files resolve against the suite's data_dir, else $BENCH_DATA_DIR, else the suite's folder."""
    if suite.data_dir is not None:
        return (suite_path.parent / suite.data_dir).resolve()
    if os.environ.get("BENCH_DATA_DIR"):
        return Path(os.environ["BENCH_DATA_DIR"]).resolve()
    return suite_path.parent.resolve()


def expand(suite: Suite, suite_path: Path, profile: str | None = None) -> list[Cell]:
    """The cross product task × backbone × method × routing × regime × seed, in a stable order."""
    train = resolve_profile(suite, profile)
    data_dir = str(data_dir_for(suite, suite_path))
    return [
        Cell(
            suite=suite.name,
            task=task,
            backbone=backbone,
            method=method,
            routing=routing,
            regime=regime,
            seed=seed,
            train=train,
            data_dir=data_dir,
        )
        for task, backbone, method, routing, regime, seed in itertools.product(
            suite.tasks, suite.backbones, suite.methods, suite.routing, suite.regimes, suite.seeds
        )
    ]
