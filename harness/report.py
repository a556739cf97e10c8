"""Leaderboards: one table per task, one row per backbone × method × routing × regime × tuning, mean ± sd
over seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.results import Record, to_frame

AXES = ["backbone", "method", "routing", "inference", "regime", "tuning"]
NUMERIC_ONLY = ["mean", "sd"]  # in the CSV for tools; the Markdown shows them as "mean ± sd"


def _mean_sd(values: pd.Series, done: int) -> str:
    values = values.dropna() * 100
    if values.empty:
        return "failed" if not done else "-"  # "-": not measured (a baseline selects nothing on validation)
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def _entropy(done: pd.DataFrame) -> str:
    """Mean expert-load entropy over seeds (nats; log E is perfectly balanced), '!' if any seed collapsed."""
    values = done["load_entropy"].dropna()
    if values.empty:
        return ""
    return f"{values.mean():.3f}" + (" !" if done["collapsed"].fillna(False).astype(bool).any() else "")


def leaderboards(records: list[Record]) -> dict[str, pd.DataFrame]:
    """Per task, a table sorted by mean test score (scores ×100; sd is the sample sd over seeds)."""
    frame = to_frame(records)
    frame.loc[frame["status"] != "done", ["test", "validation"]] = float("nan")
    tables = {}
    for task, group in frame.groupby("task", sort=True):
        metric = group["metric"].iloc[0]
        rows = []
        for key, cell in group.groupby(AXES, sort=False):
            done = cell[cell["status"] == "done"]
            rows.append(
                {
                    **dict(zip(AXES, key, strict=True)),
                    "metric": metric,
                    "test": _mean_sd(cell["test"], len(done)),
                    "val": _mean_sd(cell["validation"], len(done)),
                    "seeds": len(done),
                    "failed": int((cell["status"] != "done").sum()),
                    "trainable params": int(done["trainable_params"].iloc[0]) if len(done) else None,
                    "train s": round(float(done["train_seconds"].mean()), 1) if len(done) else None,
                    "load entropy": _entropy(done),
                    "mean": cell["test"].mean() * 100,
                    "sd": cell["test"].std(ddof=1) * 100,
                }
            )
        table = pd.DataFrame(rows).sort_values("mean", ascending=False, na_position="last")
        tables[str(task)] = table.reset_index(drop=True)
    return tables


def write_report(records: list[Record], out: Path) -> list[Path]:
    """``leaderboard.md`` (one section per task) and ``leaderboard.csv`` (all tasks, a task column)."""
    out.mkdir(parents=True, exist_ok=True)
    tables = leaderboards(records)
    suite = records[0].suite if records else ""
    sections = [f"# Leaderboard: {suite}\n"]
    for task, table in tables.items():
        shown = table.drop(columns=NUMERIC_ONLY)
        sections.append(f"## {task} (scores ×100, mean ± sd over seeds)\n\n{shown.to_markdown(index=False)}\n")
    md, csv = out / "leaderboard.md", out / "leaderboard.csv"
    md.write_text("\n".join(sections))
    pd.concat([t.assign(task=task) for task, t in tables.items()]).to_csv(csv, index=False)
    return [md, csv]
