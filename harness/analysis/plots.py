"""Report figures (matplotlib, drawn off-screen): each function returns a figure, or None when the records
have nothing to show (no few-shot rows, no routed rows …)."""

from __future__ import annotations

import itertools
import re
import textwrap
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display: figures are written to files and embedded in the HTML page

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.analysis.stats import t_interval
from harness.records.record import Record
from harness.records.store import to_frame

LOAD_COLUMNS = 3  # expert-load panels per line: three keep 8-point layer labels legible at a 1,400 px page
LOAD_ROW = 0.2  # inches per layer in an expert-load panel (an 8-point label is 0.11)


def _label(method: str, routing: str, regime: str, tuning: str) -> str:
    """A row's name in a legend: its method, its routing and regime where not the default, whether searched."""
    parts = [method] + [part for part in (routing, regime) if part not in ("none", "full")]
    return " / ".join(parts) + (" (searched)" if tuning != "-" else "")


def _table_label(row: pd.Series) -> str:
    return _label(row["method"], row["routing"], row["regime"], row["tuning"])


def _record_label(record: Record) -> str:
    return _label(record.row.method, record.row.routing, record.row.regime, record.tuning)


def _grid(n: int, width: float = 5.0, height: float = 3.8, columns: int | None = None) -> tuple[Figure, list]:
    """``n`` panels of width × height inches in one row, or wrapped after ``columns``."""
    columns = min(n, columns or n)
    lines = -(-n // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(width * columns, height * lines), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def pareto(tables: dict[str, pd.DataFrame]) -> Figure | None:
    """Test score against trainable parameters (log scale); the Pareto front joins the rows that no other row
    beats on both (more score for no more parameters)."""
    shown = {task: t[(t["trainable_params"] > 0) & t["test"].notna()] for task, t in tables.items()}
    shown = {task: t for task, t in shown.items() if len(t)}
    if not shown:
        return None
    fig, axes = _grid(len(shown), 6.5, 4.5)
    for ax, (task, table) in zip(axes, shown.items(), strict=True):
        ax.scatter(table["trainable_params"], table["test"], color="tab:blue", zorder=3)
        _annotate(ax, table)
        front, best = [], -np.inf
        for _, row in table.sort_values(["trainable_params", "test"], ascending=[True, False]).iterrows():
            if row["test"] > best:
                front.append(row)
                best = row["test"]
        ax.step(  # rings on the front's rows: a front of one row is a point, which a step alone does not draw
            [r["trainable_params"] for r in front],
            [r["test"] for r in front],
            where="post",
            color="tab:red",
            marker="o",
            markersize=11,
            markerfacecolor="none",
            markeredgewidth=1.5,
            label="Pareto front",
            zorder=4,
        )
        ax.set(xscale="log", xlabel="trainable parameters", ylabel=f"test {table['metric'].iloc[0]} ×100", title=task)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _annotate(ax: plt.Axes, table: pd.DataFrame) -> None:
    """Each row's name above its point, wrapped, on the side that faces the middle of the (log) axis: a long method
    description stays in its panel instead of squeezing the panel in ``tight_layout``."""
    where = np.log(table["trainable_params"].astype(float))
    middle = (where.min() + where.max()) / 2
    lines = 1
    for (_, row), x in zip(table.iterrows(), where, strict=True):
        left, text = bool(x > middle), textwrap.fill(_table_label(row), 36)
        lines = max(lines, text.count("\n") + 1)
        note = ax.annotate(
            text,
            (row["trainable_params"], row["test"]),
            fontsize=7,
            xytext=(-6 if left else 6, 4),  # above the point: clear of the front's horizontal steps
            textcoords="offset points",
            ha="right" if left else "left",
            va="bottom",
        )
        note.set_in_layout(False)
    ax.margins(y=0.04 + 0.055 * lines)  # room above the top point for its label's lines


def few_shot(records: list[Record]) -> Figure | None:
    """Test score against k for few-shot regimes, one line per method / routing, seeds as points."""
    frame = to_frame(records)
    frame = frame[(frame["status"] == "done") & frame["regime"].str.endswith("-shot")]
    if frame.empty:
        return None
    frame = frame.assign(
        k=frame["regime"].str.extract(r"(\d+)-shot", expand=False).astype(int), score=frame["test"] * 100
    )
    fig, axes = _grid(frame["task"].nunique())
    for ax, (task, group) in zip(axes, frame.groupby("task"), strict=True):
        for (method, routing), line in group.groupby(["method", "routing"]):
            stats = line.groupby("k")["score"].agg(["mean", "std"]).fillna(0)
            ax.errorbar(
                stats.index,
                stats["mean"],
                yerr=stats["std"],
                marker="o",
                capsize=3,
                label=method if routing == "none" else f"{method} / {routing}",
            )
            ax.scatter(line["k"], line["score"], s=8, alpha=0.4)
        ax.set(xlabel="k (examples per class / entity type)", ylabel="test ×100", title=f"{task}: few-shot")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves(records: list[Record]) -> Figure | None:
    """Test score against the number of training examples (log scale) for rows run at several training sizes
    (``train_size`` regimes, with the row's ``full`` regime as one more point), one line per method / routing /
    inference, mean over seeds with its 95 % t interval; dots are single seeds."""
    frame = to_frame(records)
    frame = frame[(frame["status"] == "done") & ~frame["regime"].str.endswith("-shot")]
    line_keys = ["task", "method", "routing", "inference", "tuning"]
    sized = frame[frame["regime"].str.startswith("n=")]
    frame = frame.merge(sized[line_keys].drop_duplicates(), on=line_keys)
    if sized.empty:
        return None
    frame = frame.assign(score=frame["test"] * 100)
    fig, axes = _grid(frame["task"].nunique(), 6.0, 4.2)
    for ax, (task, group) in zip(axes, frame.groupby("task"), strict=True):
        for (method, routing, inference, tuning), line in group.groupby(line_keys[1:]):
            points = line.groupby("train_size")["score"]
            means = points.mean()
            low, high = zip(*(t_interval(v.to_numpy()) for _, v in points), strict=True)
            yerr = np.nan_to_num([means.to_numpy() - np.array(low), np.array(high) - means.to_numpy()])
            name = _label(method, routing, "full", tuning) + ("" if inference == "-" else f" ({inference})")
            bars = ax.errorbar(means.index, means, yerr=yerr, marker="o", capsize=3, label=name)
            ax.scatter(line["train_size"], line["score"], s=8, alpha=0.4, color=bars[0].get_color())
        ax.set(xlabel="training examples", ylabel="test ×100", title=f"{task}: learning curves")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def expert_load(records: list[Record]) -> Figure | None:
    """Per routed row, each layer's share of tokens per expert (mean over seeds); 1/E everywhere is balance."""
    loads: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        layers = record.routing_stats.layers
        if record.status == "done" and layers and all("load" in v for v in layers.values()):
            loads[f"{record.row.task}: {_record_label(record)}"].append({k: v["load"] for k, v in layers.items()})
    if not loads:
        return None
    rows = max(len(seeds[0]) for seeds in loads.values())  # every layer label gets its LOAD_ROW inches
    fig, axes = _grid(len(loads), 4.6, max(3.4, 1.5 + LOAD_ROW * rows), LOAD_COLUMNS)
    for ax, (name, seeds) in zip(axes, sorted(loads.items()), strict=True):
        layers = sorted(seeds[0], key=lambda k: int(re.search(r"\d+", k).group()))
        matrix = np.mean([[seed[layer] for layer in layers] for seed in seeds], axis=0)
        image = ax.imshow(matrix, vmin=0, vmax=max(2 / matrix.shape[1], matrix.max()), cmap="viridis", aspect="auto")
        ax.set(xlabel="expert", ylabel="layer", xticks=range(matrix.shape[1]), yticks=range(len(layers)))
        ax.set_yticklabels(layers, fontsize=8)
        ax.set_title(name, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def validation_curves(records: list[Record]) -> Figure | None:
    """Validation headline against optimiser steps, one line per seed (cells that stop on patience end at
    different steps), one colour per trained row, a dot at each cell's kept state. Records written before steps
    were recorded are drawn against epochs."""
    curves: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.status == "done" and record.history:
            curves[record.row.task][_record_label(record)].append(record)
    if not curves:
        return None
    fig, axes = _grid(len(curves), 6.5, 4.5)
    for ax, (task, rows) in zip(axes, curves.items(), strict=True):
        by_step = all(h.step is not None for seeds in rows.values() for r in seeds for h in r.history)
        colours = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
        for colour, (label, seeds) in zip(colours, rows.items(), strict=False):
            for n, record in enumerate(seeds):
                x = [h.step if by_step else h.epoch for h in record.history]
                y = [h.validation[record.metrics.headline] * 100 for h in record.history]
                ax.plot(x, y, color=colour, linewidth=0.9, alpha=0.8, label=label if n == 0 else None)
                best = record.metrics.best_step if by_step else record.metrics.best_epoch
                if best in x:
                    ax.plot(best, y[x.index(best)], "o", color=colour, markersize=3)
        ax.set(xlabel="optimiser step" if by_step else "epoch", ylabel="validation ×100", title=task)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig
