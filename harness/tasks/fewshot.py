"""Few-shot splits (LM-BFF protocol): k examples per class — per entity type for NER — for train and again,
disjoint, for validation, both drawn from the training split by a split seed; the test set stays whole.

One greedy rule serves both families. Examples are visited in an order shuffled by the split seed; an example
is taken when one of its strata (its class; the types of the entities it contains) still has fewer than k.
A classification example has exactly one stratum, so every class gets exactly k. A sentence can hold several
entities and types, so every entity type ends with at least k mentions, usually a few more; sentences
without entities are never drawn (as in Yang & Katiyar's greedy sampling for few-shot NER).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from harness.core.errors import BenchError


def sample_shots(
    examples: list[Any],
    strata: Callable[[Any], Counter],
    k: int,
    seed: int,
    exclude: Collection[int] = (),
) -> list[int]:
    """Indices (sorted) of a k-per-stratum sample of ``examples`` that avoids ``exclude``."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    wanted = Counter()
    for example in examples:
        wanted.update({s: 0 for s in strata(example)})
    taken: list[int] = []
    for i in order:
        if i in exclude:
            continue
        found = strata(examples[i])
        if any(wanted[s] < k for s in found):
            taken.append(i)
            wanted.update(found)
            if all(count >= k for count in wanted.values()):
                break
    short = sorted(s for s, count in wanted.items() if count < k)
    if short:
        raise BenchError(f"{k}-shot sampling: only {wanted[short[0]]} examples of {short[0]!r} left to draw (need {k})")
    return sorted(taken)
