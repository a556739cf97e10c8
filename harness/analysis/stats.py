"""Statistics for leaderboards, with the trained model (the seed) as the unit that varies: t intervals of
the mean over seeds, exact permutation tests on per-seed scores, Holm's adjustment across a table's rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

PERMUTATIONS = 20_000  # sampled arrangements when there are too many to enumerate


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


def seed_permutation_p(a: Sequence[float], b: Sequence[float], paired: bool) -> float:
    """Two-sided p-value for "the two rows' mean scores over seeds differ", with the trained model (the seed) as
    the unit: an exact permutation test on per-seed scores, the test set held fixed.

    Paired (``a[i]`` and ``b[i]`` ran the same seed): the per-seed differences' signs are flipped in every one of
    the 2ⁿ ways, so the smallest p n seeds allow is 2/2ⁿ (0.25 for 3 seeds, 0.0625 for 5). Unpaired: the pooled
    scores are split into groups of the two sizes in every way. More than 2¹⁶ arrangements are sampled (fixed
    seed) instead. NaN when a side has fewer than two seeds.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(a), len(b)) < 2:
        return float("nan")
    if paired:
        d = a - b
        if not np.any(d):
            return 1.0
        if len(d) <= 16:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        else:
            signs = np.random.default_rng(0).choice((1.0, -1.0), size=(PERMUTATIONS, len(d)))
        statistics = np.abs(signs @ d) / len(d)
        observed = abs(d.mean())
    else:
        pooled, n = np.concatenate([a, b]), len(a)
        if math.comb(len(pooled), n) <= 2**16:
            groups = [list(c) for c in itertools.combinations(range(len(pooled)), n)]
        else:
            rng = np.random.default_rng(0)
            groups = [rng.permutation(len(pooled))[:n] for _ in range(PERMUTATIONS)]
        mask = np.zeros((len(groups), len(pooled)), dtype=bool)
        for row, group in enumerate(groups):
            mask[row, group] = True
        statistics = np.abs((mask @ pooled) / n - (~mask @ pooled) / len(b))
        observed = abs(a.mean() - b.mean())
    return float(np.mean(statistics >= observed - 1e-9 * max(1.0, observed)))


def smallest_p(n_a: int, n_b: int, paired: bool) -> float:
    """The smallest p ``seed_permutation_p`` can give for these seed counts (every seed of one side far above every
    seed of the other): below the level, no difference can be called beyond noise, however large."""
    a, b = 1e6 + np.arange(n_a, dtype=float), np.arange(n_b, dtype=float)
    return seed_permutation_p(a, b[:n_a] if paired else b, paired)


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


def difference_interval(
    a: Sequence[float], b: Sequence[float], paired: bool, confidence: float
) -> tuple[float, float, float, float]:
    """The mean difference a − b with its t interval at ``confidence`` and the two-sided t test's p: over the
    per-seed differences when paired (``a[i]`` and ``b[i]`` ran the same seed), else Welch's. NaNs when a side has
    fewer than two values; a zero-spread difference is its own interval (p 0 unless it is 0)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(a), len(b)) < 2:
        return (float("nan"),) * 4
    d = a - b if paired else None
    mean = float(d.mean()) if paired else float(a.mean() - b.mean())
    spread = d.std(ddof=1) if paired else np.hypot(a.std(ddof=1), b.std(ddof=1))
    if spread == 0:
        return mean, mean, mean, float(mean == 0)
    test = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
    interval = test.confidence_interval(confidence)
    return mean, float(interval.low), float(interval.high), float(test.pvalue)
