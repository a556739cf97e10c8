"""Statistics for leaderboards: t intervals over seeds and paired tests on predictions.

Paired tests compare two systems on the same test examples. For accuracy, McNemar's exact test on the
discordant pairs; for entity F1 (not a mean over examples), a paired bootstrap over sentences: resample
sentences with replacement, recompute both F1s from per-sentence counts, and take the two-sided p-value as
twice the smaller tail of the difference around zero. With several seeds, the pairs are (seed, example)
for McNemar and, for the bootstrap, each sentence carries its counts summed over the matched seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from seqeval.metrics.sequence_labeling import get_entities

RESAMPLES = 10_000


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


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> float:
    """Exact two-sided McNemar p-value: the discordant pairs are Binomial(b + c, 1/2) under the null."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence: (correct entities, predicted entities, gold entities), as seqeval's default mode counts."""
    rows = []
    for g, p in zip(gold, pred, strict=True):
        gold_entities, pred_entities = set(get_entities(list(g))), set(get_entities(list(p)))
        rows.append((len(gold_entities & pred_entities), len(pred_entities), len(gold_entities)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    """Micro F1 from summed counts along the second-to-last axis (0 when nothing is predicted or gold)."""
    correct, predicted, gold = np.moveaxis(counts.sum(axis=-2), -1, 0)
    denominator = predicted + gold
    return np.where(denominator > 0, 2 * correct / np.maximum(denominator, 1), 0.0)


def paired_bootstrap_f1(counts_a: np.ndarray, counts_b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> float:
    """Two-sided p-value for F1(a) ≠ F1(b) from per-sentence counts (same sentences, same order)."""
    if counts_a.shape != counts_b.shape:
        raise ValueError("both systems must be scored on the same sentences")
    rng = np.random.default_rng(seed)
    n, below, above = len(counts_a), 0, 0
    for start in range(0, resamples, 500):  # chunks keep the index matrix small (500 × sentences)
        index = rng.integers(0, n, size=(min(500, resamples - start), n))
        delta = f1_from_counts(counts_a[index]) - f1_from_counts(counts_b[index])
        below, above = below + int((delta <= 0).sum()), above + int((delta >= 0).sum())
    return float(min(1.0, 2 * min(below, above) / resamples))
