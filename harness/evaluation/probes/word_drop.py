"""Word dropout: each context word (outside entity mentions) is removed with probability ``rate``, EDA's random
deletion (Wei & Zou 2019, "EDA: Easy Data Augmentation Techniques for Boosting Performance on Text Classification
Tasks"), which they found to keep labels at small rates. Negations are never removed (deleting "not" can flip a
sentiment), nor the last word left; NER tags are removed with their words, so the rest stay aligned."""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import Field

from harness.evaluation.probes.base import ProbeParams, probes

NEGATIONS = frozenset({"not", "no", "never", "n't", "nor", "neither", "none", "nothing", "nobody", "without", "cannot"})


class WordDropParams(ProbeParams):
    kind: Literal["word_drop"] = "word_drop"
    rate: Annotated[float, Field(gt=0, lt=1)] = 0.1


@probes.register("word_drop")
class WordDrop:
    Params = WordDropParams

    def __init__(self, params: WordDropParams) -> None:
        self.params = params

    def rewrite(self, words: list[str], entity: list[bool], rng: random.Random) -> list[str | None]:
        out: list[str | None] = list(words)
        for i, (word, is_entity) in enumerate(zip(words, entity, strict=True)):
            droppable = not is_entity and word.lower() not in NEGATIONS
            if droppable and rng.random() < self.params.rate and sum(w is not None for w in out) > 1:
                out[i] = None
        return out
