"""The report's table of what each row measured beyond its clean test score (``records.measures``): one column per
measure any row wrote, mean ± sd over seeds, and a line per measure saying what it is."""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.summary import row_name
from harness.records.measures import measure


def _names(tables: dict[str, pd.DataFrame]) -> list[str]:
    return sorted({name for table in tables.values() for m in table["measures_by_unit"] for name in m})


def beyond_note(tables: dict[str, pd.DataFrame]) -> str:
    """What each measure in the table is, in its unit and direction; empty when no row measured anything."""
    lines = []
    for name in _names(tables):
        kind = measure(name)
        lines.append(f"{name}: {kind.meaning} ({kind.unit}, {kind.better} is better)")
    return "; ".join(lines)


def beyond_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per task and row with any measure: mean ± sd over the row's seeds of every measure ('-': not measured)."""
    names, rows = _names(tables), []
    for task, table in tables.items():
        for _, row in table.iterrows():
            measured = row["measures_by_unit"]
            if measured:
                rows.append({"task": task, "row": row_name(row)} | {n: _cell(measured.get(n, {})) for n in names})
    return pd.DataFrame(rows)


def _cell(values: dict[str, float]) -> str:
    if not values:
        return "-"
    series = pd.Series(list(values.values()), dtype=float)
    sd = series.std(ddof=1) if len(series) > 1 else math.nan
    return f"{series.mean():.2f}" + ("" if math.isnan(sd) else f" ± {sd:.2f}")
