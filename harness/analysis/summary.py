"""What a reader needs first, in three lines per task: the best row, the baseline, and which rows differ from the
baseline beyond noise (the leaderboard's seed-level p, Holm-adjusted, below ``LEVEL``) with the smallest
difference these seeds could find; and a fourth when rows stopped at their training cap without converging."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis.leaderboard import p_text
from harness.analysis.stats import detectable_difference

LEVEL = 0.05
POWER = 0.8


def row_name(row: pd.Series) -> str:
    """A row as its cells' labels name it, ``method/routing``, then what differs from a full-data hand-set run."""
    parts = [f"{row['method']}/{row['routing']}" + (f" ({row['inference']})" if row["inference"] != "-" else "")]
    parts += [str(row[axis]) for axis, plain in (("regime", "full"), ("tuning", "-")) if row[axis] != plain]
    return ", ".join(parts)


def _score(row: pd.Series) -> str:
    spread = "" if math.isnan(row["test_sd"]) else f" ± {row['test_sd']:.2f}"
    return f"{row['metric']} {row['test']:.2f}{spread} ({row['seeds']} seed{'s' if row['seeds'] != 1 else ''})"


def task_summary(task: str, table: pd.DataFrame) -> list[str]:
    """Best row, baseline, the rows beyond noise, and the rows not converged for one leaderboard table."""
    done = table[table["seeds"] > 0]
    if done.empty:
        return [f"{task}: no row finished"]
    lines, capped = _comparison(task, done), done[done["unconverged"] > 0]
    if not capped.empty:
        shown = "; ".join(f"{row_name(r)} ({r['unconverged']} of {r['trained']} cells)" for _, r in capped.iterrows())
        lines.append(f"{task} not converged (reached the training cap before patience ran out): {shown}")
    return lines


def _comparison(task: str, done: pd.DataFrame) -> list[str]:
    best, base = done.iloc[0], done[done["baseline"]]
    lines = [f"{task} best: {row_name(best)}, {_score(best)}"]
    if base.empty:
        return [*lines, f"{task} baseline: none in this table (the suite's report.baseline), so no row is compared"]
    base_row = base.iloc[0]
    itself = " (the best row)" if best.name == base_row.name else ""
    lines.append(f"{task} baseline: {row_name(base_row)}, {_score(base_row)}{itself}")
    compared = done[done["p"].notna()]
    if compared.empty:
        return [*lines, f"{task} beyond noise (p Holm < {LEVEL}): no row to test (a test needs two seeds a side)"]
    beyond = compared[compared["p_holm"] < LEVEL]
    shown = "; ".join(
        f"{row_name(r)} {r['delta']:+.2f} (p {p_text(r['p'])}, Holm {p_text(r['p_holm'])})"
        for _, r in beyond.iterrows()
    )
    found = f"{shown}; {len(compared) - len(beyond)} other rows are not" if shown else f"none of {len(compared)} rows"
    return [*lines, f"{task} beyond noise (p Holm < {LEVEL}): {found}; {_detectable(compared)}"]


def _detectable(compared: pd.DataFrame) -> str:
    """What "not beyond noise" can mean at these seeds: the difference the test finds with 80 % power at the
    level Holm gives the table's first row (0.05 / rows), from each row's own spread; the median over rows."""
    level = LEVEL / len(compared)
    sizes = [detectable_difference(r["se"], r["df"], level, POWER) for _, r in compared.iterrows()]
    return (
        f"with these seeds a difference is found ({POWER:.0%} power) from about {float(np.nanmedian(sizes)):.2f} "
        f"points (median over the rows' spreads; smaller ones could not have been seen)"
    )


def summary(tables: dict[str, pd.DataFrame]) -> str:
    return "\n".join(line for task, table in tables.items() for line in task_summary(task, table)) + "\n"
