"""Leaderboards: per task, one row per backbone × method × routing × inference × regime × tuning.

Each row: the headline test metric's mean ± sd over seeds and its 95 % t interval, the difference to the
suite's baseline row with the seed-level t test (``stats.seed_test``; its p shown as it is, and Holm-adjusted
across the table for the summary), and costs.
``display`` / ``rendered`` turn a table into text cells for Markdown, LaTeX and HTML (``report``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.stats import holm, seed_test, t_interval
from harness.records.measures import ROUTER_METRICS
from harness.records.record import Record
from harness.records.settings import ReportSettings
from harness.records.store import to_frame

AXES = ["backbone", "method", "routing", "inference", "regime", "tuning"]
NOT_RAW = ["by_unit", "routing_by_unit", "measures_by_unit", "keys"]  # per-seed columns the raw CSV leaves out
# column -> which value is best; the best is marked in every rendering
RANKED = {
    "test": "max",
    "val": "max",
    "delta": "max",
    "trainable_params": "min",
    "train_seconds": "min",
    "tokens_per_second": "max",
    "peak_mb": "min",
    "load_entropy": "max",
}
HEADERS = {
    "test": "test",
    "ci": "95% CI",
    "val": "val",
    "seeds": "seeds",
    "failed": "failed",
    "converged": "converged",
    "delta": "Δ",
    "p": "p",
    "trainable_params": "trainable params",
    "train_seconds": "train s",
    "tokens_per_second": "tokens/s",
    "peak_mb": "peak MB",
    "load_entropy": "load entropy",
}


# What the leaderboard's columns mean, for every page that shows one (Markdown and HTML).
NOTE = (
    "Scores ×100. test: mean ± sd over seeds; 95% CI: t interval of the mean over seeds (mean ± t·sd/√n); Δ: "
    "difference of means to the baseline row (points); p: Student's t test of that difference over seeds, two-sided "
    "— over the per-seed differences where both rows ran the same seeds (paired), else Welch's — with the trained "
    "model as the unit and the test set held fixed; it assumes per-seed differences roughly normal. The same test "
    "gives the findings' intervals and bench check's tolerance, so a pair of rows has one p everywhere. A row is "
    "beyond noise (summary) when its p, Holm-adjusted across the table's rows (p_holm in leaderboard.csv), is below "
    "0.05; the summary also says from what difference these seeds could find one. '-': fewer than two seeds. "
    "converged: the row's trained cells that stopped on patience, of all its trained cells; '(cap)' marks a row "
    "with a cell that reached its training cap first: it has not shown what its method can do, and no finding "
    "judges it."
)


def leaderboards(records: list[Record], settings: ReportSettings | None = None) -> dict[str, pd.DataFrame]:
    """Per task, a table of raw numbers (scores ×100) sorted by mean test score."""
    settings = settings or ReportSettings()
    frame = to_frame(records)
    frame.loc[frame["status"] != "done", ["test", "validation"]] = float("nan")
    tables = {}
    for task, group in frame.groupby("task", sort=True):
        rows = [_row(key, cell) for key, cell in group.groupby(AXES, sort=False)]
        table = pd.DataFrame(rows).sort_values("test", ascending=False, na_position="last").reset_index(drop=True)
        tables[str(task)] = _compare(table, group, settings)
    return tables


def read_leaderboards(csv: Path) -> dict[str, pd.DataFrame]:
    """Per task, the tables a report wrote to its ``leaderboard.csv`` (raw numbers, without the per-seed scores),
    so that a committed report can be compared when its results folder is gone."""
    frame = pd.read_csv(csv, dtype={axis: str for axis in [*AXES, "task"]}, keep_default_na=False, na_values=[""])
    return {str(task): table.drop(columns="task").reset_index(drop=True) for task, table in frame.groupby("task")}


def _row(key: tuple, cell: pd.DataFrame) -> dict[str, Any]:
    done = cell[cell["status"] == "done"]
    test = done["test"].dropna() * 100
    low, high = t_interval(test.to_numpy())
    first = done.iloc[0] if len(done) else None
    measures = _by_unit(done)
    return {
        **dict(zip(AXES, key, strict=True)),
        "metric": cell["metric"].iloc[0],
        "test": test.mean() if len(test) else math.nan,
        "test_sd": test.std(ddof=1) if len(test) > 1 else math.nan,
        "ci_low": low,
        "ci_high": high,
        "val": (done["validation"] * 100).mean(),
        "val_sd": (done["validation"] * 100).std(ddof=1) if len(done) > 1 else math.nan,
        "seeds": len(done),
        "failed": int((cell["status"] != "done").sum()),
        "trained": int(done["converged"].notna().sum()),
        "unconverged": int((done["converged"] == False).sum()),  # noqa: E712 (a column of True/False/None)
        "trainable_params": first["trainable_params"] if first is not None else math.nan,
        "train_seconds": done["train_seconds"].mean(),
        "tokens_per_second": done["tokens_per_second"].mean(),
        "peak_mb": done["peak_rss_mb"].mean(),
        "load_entropy": done["load_entropy"].mean(),
        "collapsed": bool(done["collapsed"].fillna(False).astype(bool).any()),
        "by_unit": dict(zip(done.loc[test.index, "unit"], test, strict=True)),  # (seed, split): the test's pairs
        "routing_by_unit": {  # what a hypothesis about the router compares, per (seed, split)
            column: dict(zip(done["unit"], done[column], strict=True)) for column in ROUTER_METRICS
        },
        "keys": sorted(set(cell["key"])),  # the records' row keys: which cells more seeds of this row would be
        "measures_by_unit": measures,  # the measures beyond the score (``records.measures``), per (seed, split)
        **{f"{name}{suffix}": value for name, spread in _spreads(measures).items() for suffix, value in spread},
    }


def _by_unit(done: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each measure the row's done cells wrote, per (seed, split)."""
    names = sorted({name for measures in done["measures"] for name in measures})
    return {
        name: {unit: m[name] for unit, m in zip(done["unit"], done["measures"], strict=True) if name in m}
        for name in names
    }


def _spreads(measures: dict[str, dict[str, float]]) -> dict[str, tuple[tuple[str, float], ...]]:
    """Mean and sd over units per measure: the raw CSV's ``<name>`` and ``<name>_sd`` columns."""
    out = {}
    for name, values in measures.items():
        v = np.array(list(values.values()), dtype=float)
        out[name] = (("", float(v.mean())), ("_sd", float(v.std(ddof=1)) if len(v) > 1 else math.nan))
    return out


def _compare(table: pd.DataFrame, group: pd.DataFrame, settings: ReportSettings) -> pd.DataFrame:
    """Δ to the baseline row (points), the seed-level test's p and standard error, and p Holm-adjusted across the
    table's rows."""
    method, routing = group["method_name"], group["routing_strategy"]
    chosen = group[(method == settings.baseline.method) & (routing == settings.baseline.routing)]
    chosen = chosen[(chosen["regime"] == settings.baseline.regime) & (chosen["status"] == "done")]
    table["baseline"], table["delta"] = False, math.nan
    table["p"], table["se"], table["df"] = math.nan, math.nan, math.nan
    if chosen.empty:
        table["p_holm"] = math.nan
        return table
    key = tuple(chosen.sort_values("tuning").iloc[0][AXES])  # a hand-set row before a searched one
    index = table.index[table[AXES].apply(tuple, axis=1) == key][0]
    table.loc[index, "baseline"] = True
    base = table.loc[index]
    for i, row in table.iterrows():
        if i == index or row["seeds"] == 0:
            continue
        table.loc[i, "delta"] = row["test"] - base["test"]
        test = seed_test(row["by_unit"], base["by_unit"])
        if test is not None:
            table.loc[i, ["p", "se", "df"]] = test.p, test.se, test.df
    table["p_holm"] = holm(table["p"].tolist())
    return table


def best_rows(table: pd.DataFrame) -> dict[str, set[int]]:
    """For each ranked column, the rows holding its best value (zero costs of methods that do not train and the
    baseline's own Δ are not candidates)."""
    marks: dict[str, set[int]] = {}
    for column, direction in RANKED.items():
        values = table[column].astype(float)
        if column in ("trainable_params", "train_seconds"):
            values = values.where(values > 0)
        if values.notna().sum() < 2:
            continue
        best = values.max() if direction == "max" else values.min()
        marks[column] = set(table.index[np.isclose(values, best)])
    return marks


def display(table: pd.DataFrame, bold: Callable[[str], str]) -> pd.DataFrame:
    """The table as text cells, best values wrapped by ``bold``."""
    marks = best_rows(table)
    shown = []
    for i, row in table.iterrows():
        cells = {axis: str(row[axis]) for axis in AXES}
        cells["metric"] = row["metric"]
        values = {
            "test": _mean_sd(row["test"], row["test_sd"], row["seeds"], row["failed"]),
            "ci": "-" if math.isnan(row["ci_low"]) else f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]",
            "val": _mean_sd(row["val"], row["val_sd"], row["seeds"], row["failed"]),
            "seeds": str(row["seeds"]),
            "failed": str(row["failed"]),
            "converged": converged_text(row),
            "delta": "baseline" if row["baseline"] else _number(row["delta"], "{:+.2f}"),
            "p": p_text(row["p"]),
            "trainable_params": _number(row["trainable_params"], "{:,.0f}"),
            "train_seconds": _number(row["train_seconds"], "{:.1f}"),
            "tokens_per_second": _number(row["tokens_per_second"], "{:,.0f}"),
            "peak_mb": _number(row["peak_mb"], "{:,.0f}"),
            "load_entropy": _number(row["load_entropy"], "{:.3f}") + (" !" if row["collapsed"] else ""),
        }
        for column, text in values.items():
            cells[HEADERS[column]] = bold(text) if i in marks.get(column, ()) else text
        shown.append(cells)
    return pd.DataFrame(shown)


def _mean_sd(mean: float, sd: float, seeds: int, failed: int) -> str:
    if math.isnan(mean):
        return "failed" if failed and not seeds else "-"  # "-": not measured (a baseline selects nothing)
    return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def _number(value: Any, template: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else template.format(value)


def converged_text(row: pd.Series) -> str:
    """How many of the row's trained cells stopped on patience, of how many; "-" for rows that train nothing.
    A row with a cell that reached its cap is marked: it has not shown what its method can do."""
    if not row["trained"]:
        return "-"
    text = f"{row['trained'] - row['unconverged']}/{row['trained']}"
    return text + " (cap)" if row["unconverged"] else text


def p_text(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def rendered(table: pd.DataFrame, escape: Callable[[str], str], bold: tuple[str, str]) -> pd.DataFrame:
    """``display`` for a markup language: every cell and header escaped, best values between ``bold``."""
    shown = display(table, lambda text: f"\x00{text}\x01")
    body = shown.map(lambda v: escape(str(v)).replace("\x00", bold[0]).replace("\x01", bold[1]))
    body.columns = [escape(c) for c in body.columns]
    return body
