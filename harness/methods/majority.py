"""Floors that every table needs: the majority class (for NER: every word gets the most frequent tag, O),
and for NER the most frequent training tag of each word (unseen words: O), repaired to valid IOB2."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any, Literal

from harness.methods.base import Baseline, Predicted, methods
from harness.schema import Strict

if TYPE_CHECKING:
    import torch


class MajorityParams(Strict):
    name: Literal["majority"] = "majority"
    rule: Literal["class", "word"] = "class"  # word: NER only, each word's most frequent training tag


def most_frequent(values: list[Any]) -> Any:
    """The most frequent value; ties go to the smallest, so the choice never depends on data order."""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))


def repair_iob2(tags: list[str]) -> list[str]:
    """An ``I-X`` that does not continue an ``X`` entity starts one: ``B-X``."""
    out = []
    for tag in tags:
        previous = out[-1] if out else "O"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


@methods.register("majority")
class Majority(Baseline):
    Params = MajorityParams
    seeded = False

    def conflict(self, task_type: str, regime: Any) -> str | None:
        if self.params.rule == "word" and task_type != "ner":
            return "majority rule 'word' is for NER tasks; use rule 'class'"
        if regime.few_shot:
            return "majority reads the whole training split; it has no few-shot regime"
        return super().conflict(task_type, regime)

    def predict(
        self, data: Any, task_type: str, split: str, seed: int, device: torch.device, progress: bool = False
    ) -> Predicted:
        return Predicted(self._answers(data, task_type, getattr(data, split).examples))

    def _answers(self, data: Any, task_type: str, examples: list[Any]) -> list[Any]:
        if task_type == "classification":  # one class id for every example
            return [most_frequent(data.train.gold)] * len(examples)
        train = data.train.examples
        if self.params.rule == "class":
            tag = most_frequent([t for s in train for t in s["tags"]])
            return [[tag] * len(s["tokens"]) for s in examples]
        seen: dict[str, list[str]] = defaultdict(list)
        for sentence in train:
            for word, tag in zip(sentence["tokens"], sentence["tags"], strict=True):
                seen[word].append(tag)
        best = {word: most_frequent(tags) for word, tags in seen.items()}
        return [repair_iob2([best.get(word, "O") for word in s["tokens"]]) for s in examples]
