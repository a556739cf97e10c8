"""Typos: each eligible word, with probability ``rate``, gets one character edit (adjacent swap, keyboard-neighbour
substitution, deletion or insertion; ``evaluation.edits``). ``words`` limits them to entity words or to the context
around them (NER), which test different things: reading a misspelt name against reading a misspelt sentence."""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import Field

from harness.evaluation.edits import typo
from harness.evaluation.probes.base import ProbeParams, Where, eligible, probes


class TypoParams(ProbeParams):
    kind: Literal["typo"] = "typo"
    rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    words: Where = "all"  # which words: all, entity words only, or the context around them


@probes.register("typo")
class Typo:
    Params = TypoParams

    def __init__(self, params: TypoParams) -> None:
        self.params = params

    def rewrite(self, words: list[str], entity: list[bool], rng: random.Random) -> list[str | None]:
        may = eligible(entity, self.params.words)
        return [typo(w, rng) if ok and rng.random() < self.params.rate else w for w, ok in zip(words, may, strict=True)]
