"""A suite's report settings: the row every other row is compared with, and `bench check`'s rule. Read by the
reading half (report, baseline, check) from ``<results>/report.json``; written there by `bench run`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from harness.schema import Strict


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
