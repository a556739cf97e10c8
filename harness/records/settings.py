"""A suite's report settings: the row every other row is compared with, the hypotheses the suite tests, the
sequential plan its seeds follow, and `bench check`'s rule. Read by the reading half (report, baseline, check)
from ``<results>/report.json``; written there by `bench run`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from harness.core.config import Strict
from harness.records.measures import ROUTER_METRICS, known_names, measure


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


class RowRef(Strict):
    """A leaderboard row by the labels its columns show (e.g. routing ``switch aux_loss=0``, inference ``merge``);
    a column left out matches any value, but the reference must pick one row per task."""

    backbone: str | None = None
    method: str | None = None
    routing: str | None = None
    inference: str | None = None
    regime: str | None = None
    tuning: str | None = None  # "-" (hand-set) or "search"

    def picks(self, row: dict[str, str]) -> bool:
        shown = row | {"tuning": row["tuning"].split(" ", 1)[0]}  # "search (12 trials)" is a "search" row
        return all(value is None or shown[column] == value for column, value in self.model_dump().items())

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.model_dump(exclude_none=True).items()) or "any row"


Expectation = Literal["a > b", "a >= b", "a == b", "a <= b", "a < b"]


class Hypothesis(Strict):
    """A claim about two rows' mean scores (×100), d = a − b: ``a > b`` (d > 0), ``a >= b`` (d > −margin: a is not
    worse by more than the margin), ``a == b`` (|d| < margin), and the mirrored ``<=`` / ``<``."""

    name: str
    a: RowRef
    b: RowRef
    expect: Expectation
    margin: Annotated[float, Field(ge=0)] = 0.0  # in the metric's unit (points for the score)
    # the headline test score (×100), the router's last-epoch load entropy (nats) / busiest expert's share, or a
    # measure beyond accuracy (``measures.MEASURES``: ece, robust.<probe>.drop, attack.success_rate …)
    metric: str = "score"
    source: str = ""  # where the claim comes from, e.g. "AdaMix, Table 2"

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in ROUTER_METRICS and value != "score" and measure(value) is None:
            raise ValueError(f"unknown metric {value!r} (known: {known_names()})")
        return value

    @model_validator(mode="after")
    def _equivalence_needs_a_margin(self) -> Hypothesis:
        if self.expect == "a == b" and self.margin == 0:
            raise ValueError("expect 'a == b' needs a margin > 0 (points within which the rows count as equal)")
        return self


class SeedPlan(Strict):
    """Adaptive seeds: every row runs seeds 1..min, then a row gets seed n+1 only while a comparison it is part of
    is undecided, up to max. Each look at the data (after seed min, min+1, …, max) tests at level alpha / looks
    (Bonferroni over the planned looks), so the chance that any look calls a false difference stays at most
    alpha however often the data are read."""

    min: Annotated[int, Field(ge=2)] = 3
    max: Annotated[int, Field(ge=2, le=50)] = 10
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    margin: Annotated[float, Field(ge=0)] = 0.0  # points: a row within ±margin of the baseline counts as decided

    @model_validator(mode="after")
    def _ordered(self) -> SeedPlan:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be at least min ({self.min})")
        return self

    @property
    def looks(self) -> int:
        return self.max - self.min + 1

    @property
    def seeds(self) -> list[int]:
        return list(range(1, self.max + 1))


class ReportSettings(Strict):
    baseline: BaselineRow = Field(default_factory=BaselineRow)
    check: CheckRule = Field(default_factory=CheckRule)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    plan: SeedPlan | None = None  # written by `bench run` from the suite's `seeds: {min, max}`; None: fixed seeds
    suite: str = ""  # written by `bench run`: a results folder several suites share holds others' records too
