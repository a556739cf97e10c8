"""Suites: the pydantic schema, YAML with line-numbered errors, profiles, expansion into cells, hashing."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    model_validator,
)

from harness.device import Precision
from harness.errors import BenchError
from harness.methods import build_method, methods
from harness.models import backbones, is_valid_backbone
from harness.routing import describe, routers
from harness.schema import Strict, tagged_union
from harness.search_space import METHOD_PREFIX, Search, extremes
from harness.tasks import builtin_tasks, families
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
    precision: Precision = "fp32"  # autocast dtype of forward passes; fp16 adds a gradient scaler

    def identity(self) -> dict[str, Any]:
        """The hashed form: fields added after records existed are left out at their neutral default, so those
        records keep their hashes (fp32 is what every earlier cell ran)."""
        return self.model_dump(exclude={"precision"} if self.precision == "fp32" else set())


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


class Shots(Strict):
    """A few-shot regime: k examples per class (per entity type) for train and for validation."""

    shots: PositiveInt
    # None: one split per training seed, drawn with that seed (LM-BFF); a list: every split × every seed
    split_seeds: Annotated[list[int], Field(min_length=1), AfterValidator(_unique)] | None = None
    train: Profile | None = None  # training overrides for this regime (a few examples want more epochs)


class FewShot(Strict):
    """A cell's few-shot regime: k and the seed that drew its split."""

    shots: PositiveInt
    split_seed: int


REGIME_TAGS = ("regime:full", "regime:shots")


def _regime_kind(value: Any) -> str:
    return REGIME_TAGS[0] if isinstance(value, str) else REGIME_TAGS[1]


def _regime(model: type) -> Any:
    """``full`` or a mapping; the tag decides which, so a bad mapping reports its own fields only."""
    return Annotated[
        Annotated[Literal["full"], Tag(REGIME_TAGS[0])] | Annotated[model, Tag(REGIME_TAGS[1])],
        Discriminator(_regime_kind),
    ]


Regime = _regime(Shots)
CellRegime = _regime(FewShot)


def regime_label(regime: Any) -> str:
    """``full`` or ``16-shot`` (split seeds are grouped like training seeds in tables)."""
    if isinstance(regime, str):
        return regime
    shots = regime["shots"] if isinstance(regime, dict) else regime.shots
    return f"{shots}-shot"


def _axis(item: Any, default: list | None = None) -> Any:
    unique = AfterValidator(_unique)
    if default is None:
        return Annotated[list[item], Field(min_length=1), unique]
    defaults = Field(min_length=1, default_factory=lambda: list(default), validate_default=True)
    return Annotated[list[item], defaults, unique]


AXES = ("tasks", "backbones", "methods", "routing", "regimes", "seeds")


class Grid(Strict):
    """A block of the suite with some axes replaced; the others come from the top level."""

    tasks: _axis(TaskRef) | None = None
    backbones: _axis(Annotated[str, AfterValidator(_known_backbone)]) | None = None
    methods: _axis(MethodSpec) | None = None
    routing: _axis(RoutingSpec) | None = None
    regimes: _axis(Regime) | None = None
    seeds: _axis(int) | None = None
    search: Search | None = None  # replaces the suite's search for this grid's cells


class BaselineRow(Strict):
    """The row every other row of a task is compared with (Δ and the paired test)."""

    method: str = "full"
    routing: str = "none"
    regime: str = "full"  # or "16-shot"


class CheckRule(Strict):
    """`bench check`: a row regresses when its mean falls below the baseline's by more than its tolerance,
    max(min_tolerance, t · se) points (scores ×100): se and t from a one-sided t-test of the drop (paired by seed
    where the seeds match, else Welch's), at level false_alarm / rows compared, so that a run in which nothing
    changed flags any row with probability at most ``false_alarm``."""

    false_alarm: Annotated[float, Field(gt=0, le=0.5)] = 0.05
    min_tolerance: Annotated[float, Field(ge=0)] = 0.5


class ReportSettings(Strict):
    baseline: BaselineRow = Field(default_factory=BaselineRow)
    check: CheckRule = Field(default_factory=CheckRule)


class Suite(Strict):
    name: Slug
    description: str = ""
    tasks: _axis(TaskRef)
    backbones: _axis(Annotated[str, AfterValidator(_known_backbone)])
    methods: _axis(MethodSpec, ["full"])
    routing: _axis(RoutingSpec, ["none"])
    regimes: _axis(Regime, ["full"])
    seeds: _axis(int)
    # Cells are the union of every grid's cross product (the top-level axes fill what a grid leaves out);
    # without grids, the top level is the one grid. Grids let methods that do not mix (routing with a prompt
    # baseline) share a suite and a leaderboard.
    grids: Annotated[list[Grid], Field(min_length=1)] | None = None
    search: Search | None = None  # hyperparameter search for every cell that trains (a grid may replace it)
    train: TrainConfig = Field(default_factory=TrainConfig)
    profiles: dict[Slug, Profile] = Field(default_factory=dict)
    data_dir: str | None = None
    report: ReportSettings = Field(default_factory=ReportSettings)

    @model_validator(mode="before")
    @classmethod
    def _grid_tasks_by_name(cls, data: Any) -> Any:
        """A grid may name a task the suite defines at the top level (besides the built-in ones)."""
        if not isinstance(data, dict) or not isinstance(data.get("grids"), list):
            return data
        defined = {t["name"]: t for t in data.get("tasks") or [] if isinstance(t, dict) and "name" in t}
        for grid in data["grids"]:
            if isinstance(grid, dict) and isinstance(grid.get("tasks"), list):
                grid["tasks"] = [defined.get(t, t) if isinstance(t, str) else t for t in grid["tasks"]]
        return data

    def grid_axes(self) -> list[tuple[tuple, dict[str, Any]]]:
        """Each grid's location in the YAML, its resolved axes and its ``search`` (None: no search)."""
        if self.grids is None:
            return [((), {axis: getattr(self, axis) for axis in AXES} | {"search": self.search})]
        return [
            (
                ("grids", i),
                {axis: getattr(grid, axis) or getattr(self, axis) for axis in AXES}
                | {"search": grid.search or self.search},
            )
            for i, grid in enumerate(self.grids)
        ]

    def axis_location(self, grid: tuple, axis: str) -> tuple:
        """Where ``axis`` of ``grid`` is written: in the grid if it sets it, else at the top level."""
        if grid and getattr(self.grids[grid[1]], axis) is not None:
            return (*grid, axis)
        return (axis,)


def _digest(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def group_hash(hashed_fields: dict[str, Any]) -> str:
    """A cell's hashed fields without the training seed: the key of its study, tracking parent and table row."""
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

    def hashed_fields(self) -> dict[str, Any]:
        fields = {
            "task": self.task.identity(),
            "backbone": self.backbone,
            "method": self.method.model_dump(),
            "routing": self.routing.model_dump(),
            "regime": self.regime if isinstance(self.regime, str) else self.regime.model_dump(),
            "seed": self.seed,
        }
        if methods.get(self.method.name).trains:  # a baseline's numbers do not depend on training settings
            fields["train"] = self.train.identity()
        if self.search is not None:  # a searched cell is not the same experiment as a hand-set one
            fields["search"] = self.search.identity()
        return fields

    @property
    def config_hash(self) -> str:
        return _digest(self.hashed_fields())

    @property
    def group_hash(self) -> str:
        return group_hash(self.hashed_fields())

    def with_params(self, params: dict[str, Any]) -> Cell:
        """This cell with searched values laid over it: ``method.<field>`` keys on the method's parameters,
        the others on the training settings."""
        method = {k.removeprefix(METHOD_PREFIX): v for k, v in params.items() if k.startswith(METHOD_PREFIX)}
        train = {k: v for k, v in params.items() if not k.startswith(METHOD_PREFIX)}
        if "lr" in train and hasattr(self.method, "lr"):  # the method's own lr would otherwise say another value
            method.setdefault("lr", train["lr"])
        return self.model_copy(
            update={
                "method": type(self.method).model_validate(self.method.model_dump() | method),
                "train": TrainConfig.model_validate(self.train.model_dump() | train),
            }
        )

    def with_seed(self, seed: int) -> Cell:
        return self.model_copy(update={"seed": seed})

    @property
    def label(self) -> str:
        regime = self.regime
        if not isinstance(regime, str):
            regime = f"{regime.shots}shot-split{regime.split_seed}"
        return f"{self.task.name}/{self.backbone}/{self.method.name}/{self.routing.strategy}/{regime}/seed{self.seed}"

    @property
    def group_label(self) -> str:
        return self.label.rsplit("/", 1)[0]


def load_suite(path: Path) -> Suite:
    """Parse and validate ``path``; every problem becomes one ``file:line: field: message`` line."""
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise BenchError(f"{path}:1: expected a mapping of suite fields, got {type(data).__name__}")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        raise BenchError("\n".join(_describe(err, path, data, lines) for err in e.errors())) from None
    problems = _mismatches(suite, path, lines) + _search_problems(suite, path, lines)
    if problems:
        raise BenchError("\n".join(problems))
    return suite


def _mismatches(suite: Suite, path: Path, lines: dict) -> list[str]:
    """Combinations that make no sense (routing a prompt baseline, prompt tuning on NER …): one line per
    method entry and reason, at the entry, naming the first combination that hit it."""
    problems: dict[tuple, str] = {}
    for grid, axes in suite.grid_axes():
        for task, (m, method), routing, regime in itertools.product(
            axes["tasks"], enumerate(axes["methods"]), axes["routing"], axes["regimes"]
        ):
            reason = build_method(method).conflict(task.type, routing, regime)
            loc = (*suite.axis_location(grid, "methods"), m)
            if reason is None or (loc, reason) in problems:
                continue
            problems[loc, reason] = (
                f"{path}:{line_of(lines, loc)}: {_dotted(loc)}: {reason} "
                f"(task {task.name}, routing {describe(routing.model_dump())}, regime {regime_label(regime)})"
            )
    return list(problems.values())


def _dotted(loc: tuple) -> str:
    """``("grids", 0, "methods", 1)`` as ``grids[0].methods[1]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _search_problems(suite: Suite, path: Path, lines: dict) -> list[str]:
    """Search keys that name no field of the training settings or of a searched method, values at the edges
    of a range that the field would reject, and metrics the task does not report."""
    problems: dict[tuple, str] = {}

    def problem(loc: tuple, message: str) -> None:
        problems.setdefault(loc, f"{path}:{line_of(lines, loc)}: {_dotted(loc)}: {message}")

    for grid, axes in suite.grid_axes():
        search = axes["search"]
        if search is None:
            continue
        at = (*grid, "search") if grid and suite.grids[grid[1]].search is not None else ("search",)
        for task in axes["tasks"]:
            known = families.get(task.type).metrics
            if search.metric is not None and search.metric not in known:
                problem((*at, "metric"), f"task {task.name} reports {', '.join(known)}, not {search.metric!r}")
        trained = [m for m in axes["methods"] if methods.get(m.name).trains]
        for key, param in search.space.items():
            loc = (*at, "space", key)
            for method in [None] if not key.startswith(METHOD_PREFIX) else trained:
                model = TrainConfig if method is None else type(method)
                name = key.removeprefix(METHOD_PREFIX)
                if name not in model.model_fields or name == "name":
                    allowed = ", ".join(f for f in model.model_fields if f != "name") or "none"
                    owner = "the training settings have" if method is None else f"method {method.name!r} has"
                    problem(loc, f"{owner} no field {name!r} (fields: {allowed})")
                    break
                base = {} if method is None else method.model_dump()
                for value in extremes(param):
                    try:
                        model.model_validate(base | {name: value})
                    except ValidationError as e:
                        problem(loc, f"{value!r} is not a valid {name}: {e.errors()[0]['msg']}")
    return list(problems.values())


def _describe(err: Any, path: Path, data: Any, lines: dict) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "unknown_field":
        loc = (*loc, err["ctx"]["field"])
    shown, node = [], data
    for part in loc:
        if part in REGIME_TAGS or (isinstance(node, dict) and part not in node and part in node.values()):
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


def cell_train(base: TrainConfig, method: Any, regime: Any) -> TrainConfig:
    """The training settings a cell runs with: the profile's, then the regime's overrides, then the method's
    learning rate. A few-shot set is its own size, so subset sizes do not apply to it."""
    if not isinstance(regime, str):
        overrides = regime.train.model_dump(exclude_unset=True) if regime.train is not None else {}
        base = base.model_copy(update={"train_subset": None, "validation_subset": None, **overrides})
    lr = build_method(method).lr
    return base if lr is None else base.model_copy(update={"lr": lr})


def _cell_regimes(regime: Any, seed: int) -> list[Any]:
    if isinstance(regime, str):
        return [regime]
    return [FewShot(shots=regime.shots, split_seed=s) for s in (regime.split_seeds or [seed])]


def expand(suite: Suite, suite_path: Path, profile: str | None = None) -> list[Cell]:
    """The union over grids of task × backbone × method × routing × regime × seed, in a stable order.

    A method without randomness (``majority``, ``zero_shot``) gets only the first seed; a few-shot regime
    adds one cell per split seed.
    """
    base = resolve_profile(suite, profile)
    data_dir = str(data_dir_for(suite, suite_path))
    cells: dict[str, Cell] = {}
    for _, axes in suite.grid_axes():
        for task, backbone, method, routing, regime in itertools.product(
            axes["tasks"], axes["backbones"], axes["methods"], axes["routing"], axes["regimes"]
        ):
            seeds = axes["seeds"] if methods.get(method.name).seeded else axes["seeds"][:1]
            train = cell_train(base, method, regime)
            search = axes["search"] if methods.get(method.name).trains else None
            for seed in seeds:
                for cell_regime in _cell_regimes(regime, seed):
                    cell = Cell(
                        suite=suite.name,
                        task=task,
                        backbone=backbone,
                        method=method,
                        routing=routing,
                        regime=cell_regime,
                        seed=seed,
                        train=train,
                        data_dir=data_dir,
                        search=search,
                    )
                    cells.setdefault(cell.config_hash, cell)
    return list(cells.values())
