"""Regression checks for nightly CI: a baseline of per-row scores, and a verdict on a new run against it.

A row is a leaderboard row: a cell without its training seed and few-shot split (task, backbone, method,
routing, regime, training settings, search). The rule (``CheckRule``, per suite): a row regresses when its
mean falls below the baseline's by more than max(min_tolerance, t · se) points, a one-sided t-test of the drop
— paired over the (seed, split) units both runs share when they are the same units, else Welch's test with its
degrees of freedom — at level false_alarm / m for the m rows compared (Bonferroni), so a run in which nothing
changed raises a false alarm on any row with probability at most false_alarm. A row that is missing, or has a
failed cell, is a regression too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from scipy import stats

from harness.analysis.stats import seed_test
from harness.core.atomic import write_json_atomic
from harness.core.errors import BenchError
from harness.records.measures import measure
from harness.records.record import Record
from harness.records.settings import CheckRule


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    metric: str
    values: list[float]  # test scores ×100, one per cell
    units: list[str]  # the (seed, split) each value came from, for pairing
    measures: dict[str, list[float]] = {}  # every measure all of the row's cells wrote, aligned with ``units``


class Baseline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str
    rule: CheckRule
    rows: dict[str, Row]


def _rows(records: list[Record]) -> dict[str, list[Record]]:
    rows: dict[str, list[Record]] = {}
    for record in records:
        rows.setdefault(record.row.key, []).append(record)
    return rows


def make_baseline(records: list[Record], rule: CheckRule) -> Baseline:
    """Every row whose cells are all done; a row with a failed cell cannot be a reference."""
    rows = {}
    for key, group in _rows(records).items():
        if any(r.status != "done" for r in group):
            raise BenchError(f"{group[0].label}: failed cells; fix them before taking a baseline")
        group = sorted(group, key=lambda r: r.row.unit)
        shared = set.intersection(*(set(r.measures) for r in group))
        rows[key] = Row(
            label=group[0].row.label,
            metric=group[0].metrics.headline,
            values=[r.test_score * 100 for r in group],
            units=[r.row.unit for r in group],
            measures={name: [r.measures[name] for r in group] for name in sorted(shared)},
        )
    return Baseline(suite=records[0].suite, rule=rule, rows=dict(sorted(rows.items(), key=lambda kv: kv[1].label)))


def write_baseline(baseline: Baseline, path: Path) -> None:
    write_json_atomic(path, baseline.model_dump(mode="json"))


def read_baseline(path: Path) -> Baseline:
    try:
        return Baseline.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{path}: no such baseline file (write one with `bench baseline DIR`)") from None
    except (ValidationError, ValueError) as e:
        first = str(e).splitlines()
        raise BenchError(
            f"{path}: not a baseline file ({' '.join(first[:3])}); write it again with `bench baseline DIR`"
        ) from None


@dataclass
class Verdict:
    label: str
    baseline: float
    now: float
    tolerance: float
    verdict: str  # ok, REGRESSED, MISSING, FAILED, new
    test: str = "-"  # paired, Welch, or none (too few seeds for a spread: min_tolerance alone)
    df: float = math.nan

    @property
    def delta(self) -> float:
        return self.now - self.baseline

    @property
    def bad(self) -> bool:
        return self.verdict in ("REGRESSED", "MISSING", "FAILED")


@dataclass(frozen=True)
class Drop:
    """The one-sided test of a row's drop: its standard error, degrees of freedom and kind."""

    se: float
    df: float
    test: str

    def tolerance(self, rule: CheckRule, level: float) -> float:
        if self.test == "none" or self.se == 0:
            return rule.min_tolerance
        return max(rule.min_tolerance, float(stats.t.ppf(1 - level, self.df)) * self.se)


def drop_test(baseline: dict[str, float], now: dict[str, float]) -> Drop:
    """The leaderboard's seed-level test (``stats.seed_test``) of now − baseline: paired over the (seed, split)
    units both runs ran when they share two or more, else Welch's."""
    test = seed_test(now, baseline)
    if test is None:
        return Drop(0.0, math.nan, "none")
    return Drop(test.se, test.df, "paired" if test.paired else "Welch")


def row_level(rule: CheckRule, compared: int) -> float:
    """The one-sided level each of ``compared`` rows is tested at: Bonferroni, so any false alarm in a run with
    no real change has probability at most ``rule.false_alarm``."""
    return rule.false_alarm / max(1, compared)


def _value(record: Record, metric: str) -> float:
    """The record's test score ×100, or its measure ``metric`` (NaN where it has none)."""
    return record.test_score * 100 if metric == "score" else record.measures.get(metric, math.nan)


def check(records: list[Record], baseline: Baseline, metric: str = "score") -> list[Verdict]:
    """A verdict for every baseline row that has ``metric`` (the score, or a measure such as ``ece``), then the rows
    the baseline does not know (``new``, never bad). A measure where lower is better regresses when it rises."""
    kind = measure(metric)
    lower_is_better = kind is not None and kind.better == "lower"
    rule = baseline.rule
    if kind is not None and kind.unit != "points":  # min_tolerance is in points
        rule = rule.model_copy(update={"min_tolerance": 0.0})
    now = _rows(records)
    references = {
        k: row.values if metric == "score" else row.measures[metric]
        for k, row in baseline.rows.items()
        if metric == "score" or metric in row.measures
    }
    compared = [k for k in references if _complete(now.get(k, []))]
    level = row_level(rule, len(compared))
    verdicts = []
    for key, values in references.items():
        row, mean_b = baseline.rows[key], float(np.mean(values))
        group = now.get(key, [])
        done = {r.row.unit: _value(r, metric) for r in group if r.status == "done"}
        done = {unit: value for unit, value in done.items() if not math.isnan(value)}
        if not group or (key in compared and not done):
            verdicts.append(Verdict(row.label, mean_b, math.nan, math.nan, "MISSING"))
        elif key not in compared:
            verdicts.append(Verdict(row.label, mean_b, _mean(list(done.values())), math.nan, "FAILED"))
        else:
            mean_now = float(np.mean(list(done.values())))
            sign = -1.0 if lower_is_better else 1.0  # test the drop of the signed value: a rise of a lower-is-better
            reference = {u: sign * v for u, v in zip(row.units, values, strict=True)}
            drop = drop_test(reference, {u: sign * v for u, v in done.items()})
            tol = drop.tolerance(rule, level)
            verdict = "REGRESSED" if sign * mean_now < sign * mean_b - tol else "ok"
            verdicts.append(Verdict(row.label, mean_b, mean_now, tol, verdict, drop.test, drop.df))
    for key, group in now.items():
        if key not in baseline.rows:
            done_values = [v for r in group if r.status == "done" and not math.isnan(v := _value(r, metric))]
            verdicts.append(Verdict(group[0].row.label, math.nan, _mean(done_values), math.nan, "new"))
    return verdicts


def simulate(
    rule: CheckRule, sds: list[float], seeds: int, drop: float, runs: int, paired: bool, seed: int = 0
) -> tuple[float, float]:
    """The rule on simulated nights in which every row's reruns are independent draws (another machine, another
    library version) with the given per-row sds, and every row's mean fell by ``drop`` points: (the share of
    runs with any row flagged, the share of rows flagged). With ``drop=0`` the first is the false-alarm rate
    per run. ``paired``: the rerun used the baseline's seeds (paired test), else other seeds (Welch)."""
    rng = np.random.default_rng(seed)
    level = row_level(rule, len(sds))
    units = [str(i) for i in range(seeds)]
    flagged = np.zeros((runs, len(sds)), dtype=bool)
    for run in range(runs):
        for row, sd in enumerate(sds):
            before, after = rng.normal(0, sd, seeds), rng.normal(-drop, sd, seeds)
            now_units = units if paired else [f"rerun {u}" for u in units]
            drop_of = drop_test(dict(zip(units, before, strict=True)), dict(zip(now_units, after, strict=True)))
            flagged[run, row] = after.mean() < before.mean() - drop_of.tolerance(rule, level)
    return float(flagged.any(axis=1).mean()), float(flagged.mean())


def _complete(group: list[Record]) -> bool:
    return bool(group) and all(r.status == "done" for r in group)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def table(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    def number(value: float, template: str = "{:.2f}") -> str:
        return "-" if math.isnan(value) else template.format(value)

    return [
        {
            "row": v.label,
            "baseline": number(v.baseline),
            "now": number(v.now),
            "Δ": number(v.delta, "{:+.2f}"),
            "tolerance": number(v.tolerance),
            "test": v.test if math.isnan(v.df) else f"{v.test} (df {v.df:.1f})",
            "verdict": v.verdict,
        }
        for v in verdicts
    ]
