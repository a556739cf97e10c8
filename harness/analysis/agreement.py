"""Whether a small training budget orders the rows as the full budget does: Spearman's and Kendall's rank
correlation over the rows both budgets ran, and every pair of rows whose order swaps, with the full budget's gap
set against the seed noise of a difference (√(sd₁² + sd₂²) of one seed each), so that a swap inside the noise is
told apart from one that changes a conclusion."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import pandas as pd
from scipy import stats

from harness.analysis.leaderboard import AXES
from harness.analysis.summary import row_name


@dataclass(frozen=True)
class Swap:
    ahead: str  # the row ahead at the full budget
    behind: str
    full_gap: float  # points, > 0
    small_gap: float  # points, ≤ 0: the small budget orders the two the other way (or ties them)
    noise: float  # sd of a one-seed difference; NaN when neither budget ran two seeds of both rows

    @property
    def matters(self) -> bool:
        """The full budget's gap is larger than seed noise (a pair without a noise estimate counts)."""
        return math.isnan(self.noise) or self.full_gap > self.noise


@dataclass(frozen=True)
class Agreement:
    task: str
    rows: int
    spearman: float
    kendall: float
    swaps: list[Swap]


def agreement(small: dict[str, pd.DataFrame], full: dict[str, pd.DataFrame]) -> list[Agreement]:
    """Per task both leaderboards have, the rows both ran (matched on every leaderboard axis) compared by mean
    test score."""
    found = []
    for task in sorted(small.keys() & full.keys()):
        a, b = (t[t["seeds"] > 0].set_index(AXES) for t in (small[task], full[task]))
        shared = [key for key in a.index if key in b.index]
        if len(shared) < 2:
            continue
        a, b = a.loc[shared], b.loc[shared]
        swaps = []
        for first, second in combinations(shared, 2):
            ahead, behind = (first, second) if b.loc[first, "test"] >= b.loc[second, "test"] else (second, first)
            small_gap = a.loc[ahead, "test"] - a.loc[behind, "test"]
            full_gap = b.loc[ahead, "test"] - b.loc[behind, "test"]
            if small_gap <= 0 < full_gap:
                swaps.append(Swap(_name(ahead), _name(behind), full_gap, small_gap, _noise(a, b, ahead, behind)))
        found.append(
            Agreement(
                task,
                len(shared),
                float(stats.spearmanr(a["test"], b["test"]).statistic),
                float(stats.kendalltau(a["test"], b["test"]).statistic),
                sorted(swaps, key=lambda s: -s.full_gap),
            )
        )
    return found


def _name(key: tuple) -> str:
    return row_name(pd.Series(dict(zip(AXES, key, strict=True))))


def _noise(small: pd.DataFrame, full: pd.DataFrame, first: tuple, second: tuple) -> float:
    """√(sd₁² + sd₂²) from the full budget when it ran two or more seeds of both rows, else from the small one."""
    for table in (full, small):
        sds = table.loc[[first, second], "test_sd"]
        if sds.notna().all():
            return float(math.hypot(*sds))
    return math.nan
