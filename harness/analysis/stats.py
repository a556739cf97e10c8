"""Statistics for leaderboards, with the trained model (the seed) as the unit that varies: t intervals of
the mean over seeds, one t test of the difference between two rows (``seed_test``), Holm's adjustment across a
table's rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean, mean ± t(n−1)·sd/√n: its coverage is the stated one for normal draws
    at any n (a percentile bootstrap over 3 seeds is just [min, max], about 75 %); (nan, nan) for fewer than
    two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    mean, sem = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
    if sem == 0:
        return float(mean), float(mean)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaNs are not part of the family and stay NaN): the
    chance of any false claim among the family stays at the level, whatever their dependence."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class SeedTest:
    """Student's t test of the difference between two rows' scores, the trained model (the seed) as the unit:
    over the per-seed differences when the rows share two or more (seed, split) units (paired), else Welch's test
    on the two rows' scores. It assumes those differences (or scores) roughly normal; the test set is held fixed.
    One test for every view: the leaderboard's p, the findings' intervals and ``bench check``'s tolerance."""

    difference: float  # mean of a − b
    se: float
    df: float
    paired: bool

    @property
    def p(self) -> float:
        """Two-sided; a difference without spread is certain (0), unless it is 0 (1)."""
        if self.se == 0:
            return float(self.difference == 0)
        return float(2 * stats.t.sf(abs(self.difference) / self.se, self.df))

    def interval(self, confidence: float) -> tuple[float, float]:
        if self.se == 0:
            return self.difference, self.difference
        half = float(stats.t.ppf(0.5 + confidence / 2, self.df)) * self.se
        return self.difference - half, self.difference + half

    def detectable(self, level: float, power: float = 0.8) -> float:
        """The smallest true difference this test, with this spread and these seeds, finds at ``level``
        (two-sided) with probability ``power``: (t(1 − level/2) + t(power)) · se."""
        return detectable_difference(self.se, self.df, level, power)


def detectable_difference(se: float, df: float, level: float, power: float = 0.8) -> float:
    if se == 0 or math.isnan(se):
        return 0.0 if se == 0 else math.nan
    return float((stats.t.ppf(1 - level / 2, df) + stats.t.ppf(power, df)) * se)


def seed_test(a: Mapping[str, float], b: Mapping[str, float]) -> SeedTest | None:
    """The test of a − b over per-unit scores (unit: "seed" or "seed/split"); None when a side has fewer than two
    values (one trained model per side is not a comparison of methods)."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        d = np.array([a[u] - b[u] for u in shared], dtype=float)
        return SeedTest(float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d) - 1, True)
    x, y = np.array(list(a.values()), dtype=float), np.array(list(b.values()), dtype=float)
    if min(len(x), len(y)) < 2:
        return None
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if se > 0 else math.nan
    return SeedTest(float(x.mean() - y.mean()), se, float(df), False)
