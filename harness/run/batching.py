"""Batch orders: length-grouped for training (little padding), length-sorted for evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MEGABATCH = 64  # batches per sorting window: large enough to pad little, small enough to stay random


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort by length inside windows of ``MEGABATCH`` batches, cut, then shuffle the batches.

    The same idea as transformers' ``LengthGroupedSampler``, but every batch (not only the first) is
    drawn from a window so that the order of batches carries no length trend across an epoch.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    window = batch_size * MEGABATCH
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def random_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """Plain shuffled batches (what transformers' Trainer does by default)."""
    order = np.random.default_rng(seed).permutation(n)
    return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation order: longest first, so the padding is minimal and memory peaks at the start."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
