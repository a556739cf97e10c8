"""Regression checks for nightly CI: a baseline of per-row scores, and a verdict on a new run against it.

A row is a leaderboard row: a cell without its training seed and few-shot split (task, backbone, method,
routing, regime, training settings, search). The rule (``CheckRule``, per suite): a row regresses when its
mean falls below the baseline's by more than max(min_tolerance, sigmas · sqrt(sd_b²/n_b + sd_now²/n_now))
points — the standard error of the difference of two means, so seed noise of the size the baseline showed
passes and a real drop does not. A row that is missing, or has a failed cell, is a regression too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.atomic import write_json_atomic
from harness.errors import BenchError
from harness.results import Record
from harness.suite import CheckRule, group_hash


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    metric: str
    values: list[float]  # test scores ×100, one per seed


class Baseline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str
    rule: CheckRule
    rows: dict[str, Row]


def row_key(config: dict[str, Any]) -> str:
    """A leaderboard row: the cell without its training seed and without its few-shot split, the two things
    seeds vary (so a few-shot row's spread is over its splits, as in the report)."""
    regime = config["regime"]
    if not isinstance(regime, str):
        regime = {k: v for k, v in regime.items() if k != "split_seed"}
    return group_hash(config | {"regime": regime})


def row_label(record: Record) -> str:
    return re.sub(r"-split\d+$", "", record.label.rsplit("/", 1)[0])


def _rows(records: list[Record]) -> dict[str, list[Record]]:
    rows: dict[str, list[Record]] = {}
    for record in records:
        rows.setdefault(row_key(record.config), []).append(record)
    return rows


def make_baseline(records: list[Record], rule: CheckRule) -> Baseline:
    """Every row whose cells are all done; a row with a failed cell cannot be a reference."""
    rows = {}
    for key, group in _rows(records).items():
        if any(r.status != "done" for r in group):
            raise BenchError(f"{group[0].label}: failed cells; fix them before taking a baseline")
        headline = group[0].metrics["headline"]
        label = row_label(group[0])
        rows[key] = Row(label=label, metric=headline, values=[r.metrics["test"][headline] * 100 for r in group])
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
        raise BenchError(f"{path}: not a baseline file ({' '.join(first[:3])})") from None


@dataclass
class Verdict:
    label: str
    baseline: float
    now: float
    tolerance: float
    verdict: str  # ok, REGRESSED, MISSING, FAILED, new

    @property
    def delta(self) -> float:
        return self.now - self.baseline

    @property
    def bad(self) -> bool:
        return self.verdict in ("REGRESSED", "MISSING", "FAILED")


def _mean_sd(values: list[float]) -> tuple[float, float, int]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, len(values)


def tolerance(rule: CheckRule, baseline: list[float], now: list[float]) -> float:
    (_, sd_b, n_b), (_, sd_n, n_n) = _mean_sd(baseline), _mean_sd(now)
    return max(rule.min_tolerance, rule.sigmas * math.sqrt(sd_b**2 / n_b + sd_n**2 / n_n))


def check(records: list[Record], baseline: Baseline) -> list[Verdict]:
    """A verdict for every baseline row, then the rows the baseline does not know (``new``, never bad)."""
    now = _rows(records)
    verdicts = []
    for key, row in baseline.rows.items():
        mean_b = float(np.mean(row.values))
        group = now.get(key, [])
        done = [r.metrics["test"][row.metric] * 100 for r in group if r.status == "done"]
        if not group:
            verdicts.append(Verdict(row.label, mean_b, math.nan, math.nan, "MISSING"))
        elif len(done) < len(group):
            verdicts.append(Verdict(row.label, mean_b, _mean(done), math.nan, "FAILED"))
        else:
            tol = tolerance(baseline.rule, row.values, done)
            verdict = "REGRESSED" if np.mean(done) < mean_b - tol else "ok"
            verdicts.append(Verdict(row.label, mean_b, float(np.mean(done)), tol, verdict))
    for key, group in now.items():
        if key not in baseline.rows:
            headline = group[0].metrics["headline"]
            done = [r.metrics["test"][headline] * 100 for r in group if r.status == "done"]
            verdicts.append(Verdict(row_label(group[0]), math.nan, _mean(done), math.nan, "new"))
    return verdicts


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
            "verdict": v.verdict,
        }
        for v in verdicts
    ]
