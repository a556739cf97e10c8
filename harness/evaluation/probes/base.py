"""What a robustness probe is: a seeded rewrite of the test set's words that keeps the gold answer (and, for NER,
the tags aligned with the words), scored like the clean test set. One module per probe, registered by kind."""

from __future__ import annotations

import random
from typing import Any, ClassVar, Literal, Protocol

from harness.core.config import Strict, describe
from harness.core.registry import Registry

Where = Literal["all", "context", "entities"]


class ProbeParams(Strict):
    """Fields every probe has: the share of eligible words it changes and the seed of its one perturbed test set
    (the same for every cell, so rows are compared on the same perturbed sentences)."""

    kind: str
    rate: float
    seed: int = 1


class Probe(Protocol):
    Params: ClassVar[type[ProbeParams]]

    def __init__(self, params: Any) -> None: ...

    def rewrite(self, words: list[str], entity: list[bool], rng: random.Random) -> list[str | None]:
        """The words after the probe (None: removed), given which words belong to an entity mention."""
        ...


probes: Registry[type[Probe]] = Registry("probe")


def probe_name(params: ProbeParams) -> str:
    """The name measures carry, e.g. ``typo_0.05``, ``typo_0.05_entities``, ``word_drop_0.1``."""
    where = getattr(params, "words", "all")
    return (
        f"{params.kind}_{params.rate:g}"
        + ("" if where == "all" else f"_{where}")
        + ("" if params.seed == 1 else f"_seed{params.seed}")
    )


def describe_probe(params: ProbeParams) -> str:
    return describe(params.model_dump(), type(params), "kind")


def eligible(entity: list[bool], where: Where) -> list[bool]:
    """Which words a probe limited to ``where`` may change."""
    return [where == "all" or (e if where == "entities" else not e) for e in entity]
