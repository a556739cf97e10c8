"""What a reader needs first, in three lines per task: the best row, the baseline, and which rows differ from the
baseline beyond noise (the leaderboard's seed-level p, Holm-adjusted, below ``LEVEL``) — or why none can at
this number of seeds; and a fourth when rows stopped at their training cap without converging."""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.leaderboard import p_text

LEVEL = 0.05


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
    beyond = compared[compared["p"] < LEVEL]
    if not beyond.empty:
        shown = "; ".join(f"{row_name(r)} {r['delta']:+.2f} (p {p_text(r['p'])})" for _, r in beyond.iterrows())
        rest = len(compared) - len(beyond)
        return [*lines, f"{task} beyond noise (p Holm < {LEVEL}): {shown}; {rest} other rows are not"]
    if compared.empty:
        return [*lines, f"{task} beyond noise (p Holm < {LEVEL}): no row to test (a test needs two seeds a side)"]
    floor = min(1.0, compared["p_floor"].min() * len(compared))  # Holm multiplies the smallest p by the rows
    why = (
        f"with these seeds no p can fall below {compared['p_floor'].min():.3g} ({floor:.3g} after Holm over "
        f"{len(compared)} rows): add seeds to decide"
        if floor >= LEVEL
        else f"the smallest is p {p_text(compared['p'].min())}"
    )
    return [*lines, f"{task} beyond noise (p Holm < {LEVEL}): none of {len(compared)} rows; {why}"]


def summary(tables: dict[str, pd.DataFrame]) -> str:
    return "\n".join(line for task, table in tables.items() for line in task_summary(task, table)) + "\n"
