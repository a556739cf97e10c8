"""A suite's schema: axes, grids, search, training settings, profiles, report settings. Loading a file and
expanding it into cells is ``expand``; which combinations can run is ``compatibility``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from harness.core.config import Strict
from harness.records.settings import ReportSettings, SeedPlan
from harness.suite.search_space import Search
from harness.suite.specs import (
    Backbone,
    Evaluate,
    MethodSpec,
    Profile,
    Regime,
    RoutingSpec,
    TaskRef,
    TrainConfig,
    unique,
)
from harness.tasks.base import Slug


def _axis(item: Any, default: list | None = None) -> Any:
    if default is None:
        return Annotated[list[item], Field(min_length=1), AfterValidator(unique)]
    defaults = Field(min_length=1, default_factory=lambda: list(default), validate_default=True)
    return Annotated[list[item], defaults, AfterValidator(unique)]


AXES = ("tasks", "backbones", "methods", "routing", "regimes", "seeds")
SEED_TAGS = ("seeds:list", "seeds:plan")


def _seed_kind(value: Any) -> str:
    """A mapping is a plan; anything else is checked as a list (so a bad list gets the list's error alone)."""
    return SEED_TAGS[1] if isinstance(value, dict | SeedPlan) else SEED_TAGS[0]


Seeds = Annotated[
    Annotated[_axis(int), Tag(SEED_TAGS[0])] | Annotated[SeedPlan, Tag(SEED_TAGS[1])], Discriminator(_seed_kind)
]


def seed_values(seeds: list[int] | SeedPlan) -> list[int]:
    """The seeds an axis can run: a plan's 1..max (which of them do run is ``adaptive``'s call)."""
    return seeds.seeds if isinstance(seeds, SeedPlan) else seeds


class Grid(Strict):
    """A block of the suite with some axes replaced; the others come from the top level."""

    tasks: _axis(TaskRef) | None = None
    backbones: _axis(Backbone) | None = None
    methods: _axis(MethodSpec) | None = None
    routing: _axis(RoutingSpec) | None = None
    regimes: _axis(Regime) | None = None
    seeds: _axis(int) | None = None
    search: Search | None = None  # replaces the suite's search for this grid's cells
    evaluate: Evaluate | None = None  # replaces the suite's evaluate block for this grid's cells
    profiles: _axis(Slug) | None = None  # this grid's cells exist only under these profiles (default: under all)


class Suite(Strict):
    name: Slug
    description: str = ""
    tasks: _axis(TaskRef)
    backbones: _axis(Backbone)
    methods: _axis(MethodSpec, ["full"])
    routing: _axis(RoutingSpec, ["none"])
    regimes: _axis(Regime, ["full"])
    seeds: Seeds  # {min, max}: adaptive (``adaptive``); grids may still list their own
    # Cells are the union of every grid's cross product (the top-level axes fill what a grid leaves out);
    # without grids, the top level is the one grid. Grids let methods that do not mix (routing with a prompt
    # baseline) share a suite and a leaderboard.
    grids: Annotated[list[Grid], Field(min_length=1)] | None = None
    search: Search | None = None  # hyperparameter search for every cell that trains (a grid may replace it)
    evaluate: Evaluate = Field(default_factory=Evaluate)  # beyond the clean score, for cells that train
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

    @model_validator(mode="after")
    def _report_plan_comes_from_seeds(self) -> Suite:
        if self.report.plan is not None:
            raise ValueError("report.plan is written by bench run: give seeds: {min, max} instead")
        names = [h.name for h in self.report.hypotheses]
        if len(set(names)) != len(names):
            raise ValueError(f"report.hypotheses: names must be unique ({', '.join(names)})")
        return self

    @property
    def plan(self) -> SeedPlan | None:
        return self.seeds if isinstance(self.seeds, SeedPlan) else None

    def grid_axes(self) -> list[tuple[tuple, dict[str, Any]]]:
        """Each grid's location in the YAML, its resolved axes, its ``search`` (None: no search), its ``evaluate``
        block and the ``profiles`` it is limited to (None: every profile)."""
        if self.grids is None:
            axes = {axis: getattr(self, axis) for axis in AXES}
            axes |= {"search": self.search, "evaluate": self.evaluate, "profiles": None}
            return [((), axes | {"seeds": seed_values(self.seeds)})]
        return [
            (
                ("grids", i),
                {axis: getattr(grid, axis) or getattr(self, axis) for axis in AXES}
                | {"search": grid.search or self.search, "evaluate": grid.evaluate or self.evaluate}
                | {"profiles": grid.profiles}
                | {"seeds": seed_values(grid.seeds or self.seeds)},
            )
            for i, grid in enumerate(self.grids)
        ]

    def axis_location(self, grid: tuple, axis: str) -> tuple:
        """Where ``axis`` of ``grid`` is written: in the grid if it sets it, else at the top level."""
        if grid and getattr(self.grids[grid[1]], axis) is not None:
            return (*grid, axis)
        return (axis,)
