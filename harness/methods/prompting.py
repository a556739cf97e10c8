"""Prompt baselines without training: a causal LM reads an instruction, k demonstrations (``icl``) or none
(``zero_shot``), then each test example.

Classification compares the log-probabilities of each label's verbalizer word after the template (as in
GPT-3 and LM-BFF's prompt-based zero-shot); NER asks the model to list entities as ``text (type); …`` and
parses the answer back into word-level IOB2 tags, scored with the same seqeval metrics as every other row.
Demonstrations are drawn with the few-shot sampler (k per class / entity type): the regime's k-shot training
set when the cell has one, else ``shots`` per class from the training split, by the cell's seed.
"""

from __future__ import annotations

import random
import re
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, model_validator
from seqeval.metrics.sequence_labeling import get_entities
from tqdm.auto import tqdm

from harness.lm import load_lm
from harness.methods.base import Baseline, Predicted, methods
from harness.schema import Strict
from harness.tasks import families
from harness.tasks.fewshot import sample_shots

# what the model is told each CoNLL type is called; other types are shown lower-cased
TYPE_NAMES = {"PER": "person", "ORG": "organisation", "LOC": "location", "MISC": "miscellaneous"}
ITEM = re.compile(r"(.+?)\s*\(\s*([^()]+?)\s*\)\.?")


class PromptFields(Strict):
    lm: str = "smollm2-135m"
    instruction: str | None = None  # None: a default naming the labels or entity types
    # {text} is the example; {label} (classification) or {entities} (NER) ends the template
    template: str | None = None
    verbalizers: dict[str, str] | None = None  # label → word; None: the label itself
    type_names: dict[str, str] | None = None  # NER type → word in the prompt; None: TYPE_NAMES
    max_new_tokens: Annotated[int, Field(ge=1)] = 48
    batch_size: Annotated[int, Field(ge=1)] = 16

    @model_validator(mode="after")
    def _template_ends_with_answer(self) -> PromptFields:
        if self.template is not None:
            if self.template.count("{text}") != 1:
                raise ValueError("template must contain {text} exactly once")
            if not self.template.rstrip().endswith(("{label}", "{entities}")):
                raise ValueError("template must end with {label} (classification) or {entities} (NER)")
        return self


class PromptParams(PromptFields):
    name: Literal["icl"] = "icl"
    shots: Annotated[int, Field(ge=1)] = 4  # under the `full` regime: demonstrations per class / entity type


class ZeroShotParams(PromptFields):
    name: Literal["zero_shot"] = "zero_shot"


def parse_entities(answer: str, words: list[str], types: dict[str, str]) -> list[str]:
    """IOB2 tags for ``words`` from a model's ``text (type); text (type)`` answer.

    ``types`` maps a lower-cased type word (``person``, or the code ``per``) to the tag type (``PER``). Items
    that do not parse, name an unknown type, or are not a run of the sentence's words are dropped; a span is
    tagged at its first occurrence that does not overlap an entity already tagged (case-insensitive if no
    exact match). ``none`` or an empty answer means no entities.
    """
    tags = ["O"] * len(words)
    for item in answer.split(";"):
        match = ITEM.fullmatch(item.strip())
        if not match or match.group(2).lower() not in types:
            continue
        span = match.group(1).split()
        start = _find(words, span, tags)
        if start is not None:
            tag_type = types[match.group(2).lower()]
            tags[start : start + len(span)] = [f"B-{tag_type}"] + [f"I-{tag_type}"] * (len(span) - 1)
    return tags


def _find(words: list[str], span: list[str], tags: list[str]) -> int | None:
    for same in (lambda a, b: a == b, lambda a, b: a.lower() == b.lower()):
        for start in range(len(words) - len(span) + 1):
            window = range(start, start + len(span))
            if all(same(words[i], w) for i, w in zip(window, span, strict=True)) and all(
                tags[i] == "O" for i in window
            ):
                return start
    return None


@methods.register("icl")
class InContext(Baseline):
    Params = PromptParams

    def conflict(self, task_type: str, regime: Any) -> str | None:
        answer = "{label}" if task_type == "classification" else "{entities}"
        template = self.params.template
        if template is not None and not template.rstrip().endswith(answer):
            return f"a {task_type} template must end with {answer}"
        return super().conflict(task_type, regime)

    def total_params(self, device: torch.device) -> int:
        return sum(p.numel() for p in load_lm(self.params.lm, device).model.parameters())

    # -- demonstrations

    def demonstrations(self, data: Any, task_type: str, seed: int) -> list[Any]:
        pool = data.train.examples
        if data.shots is not None:  # the regime's k-shot training set is the demonstration pool
            chosen = list(pool)
        else:
            picked = sample_shots(pool, families.get(task_type).strata, self.params.shots, seed)
            chosen = [pool[i] for i in picked]
        random.Random(seed).shuffle(chosen)  # classes interleaved, in an order fixed by the seed
        return chosen

    # -- prompts

    def _template(self, task_type: str) -> str:
        default = (
            "Text: {text}\nLabel: {label}"
            if task_type == "classification"
            else "Sentence: {text}\nEntities: {entities}"
        )
        return self.params.template or default

    def _type_names(self, labels: list[str]) -> dict[str, str]:
        types = sorted({label[2:] for label in labels if label != "O"})
        given = self.params.type_names or {}
        return {t: given.get(t, TYPE_NAMES.get(t, t.lower())) for t in types}

    def _verbalizers(self, labels: list[str]) -> list[str]:
        given = self.params.verbalizers or {}
        return [given.get(label, label) for label in labels]

    def _instruction(self, task_type: str, labels: list[str]) -> str:
        if self.params.instruction is not None:
            return self.params.instruction
        if task_type == "classification":
            return f"Classify each text as one of: {', '.join(self._verbalizers(labels))}."
        names = ", ".join(self._type_names(labels).values())
        return (
            "List the named entities in each sentence as 'text (type)', separated by '; ', or write 'none'. "
            f"Types: {names}."
        )

    def _answer(self, task_type: str, example: Any, labels: list[str]) -> str:
        if task_type == "classification":
            return self._verbalizers(labels)[labels.index(example["label"])]
        names = self._type_names(labels)
        words = example["tokens"]
        found = [f"{' '.join(words[s : e + 1])} ({names[t]})" for t, s, e in get_entities(example["tags"])]
        return "; ".join(found) or "none"

    def _filled(self, task_type: str, example: Any, answer: str | None) -> str:
        """The template for ``example``; with ``answer`` None, cut just before the answer (the query)."""
        template = self._template(task_type)
        slot = "{label}" if task_type == "classification" else "{entities}"
        text = example["text"] if task_type == "classification" else " ".join(example["tokens"])
        head = template[: template.rindex(slot)].replace("{text}", text)
        return head.rstrip(" ") if answer is None else head + answer

    def prefix(self, data: Any, task_type: str, seed: int) -> str:
        shown = [
            self._filled(task_type, example, self._answer(task_type, example, data.labels))
            for example in self.demonstrations(data, task_type, seed)
        ]
        return "\n\n".join([self._instruction(task_type, data.labels), *shown]) + "\n\n"

    # -- prediction

    def predict(
        self, data: Any, task_type: str, split: str, seed: int, device: torch.device, progress: bool = False
    ) -> Predicted:
        lm, examples, prefix = (
            load_lm(self.params.lm, device),
            getattr(data, split).examples,
            self.prefix(data, task_type, seed),
        )
        size = self.params.batch_size
        batches = [examples[i : i + size] for i in range(0, len(examples), size)]
        # disable=None: a bar only on a terminal (an NER cell generates for minutes), never in a CI log
        batches = tqdm(batches, desc=self.params.name, unit="batch", leave=False, disable=None if progress else True)
        if task_type == "classification":
            return self._classify(lm, prefix, batches, data.labels, getattr(data, split).gold)
        types = {name.lower(): t for t, name in self._type_names(data.labels).items()}
        types |= {t.lower(): t for t in self._type_names(data.labels)}
        answers: list[str] = []
        for batch in batches:
            queries = [self._filled(task_type, e, None) for e in batch]
            answers += lm.generate(prefix, queries, self.params.max_new_tokens)
        tags = [parse_entities(a, e["tokens"], types) for a, e in zip(answers, examples, strict=True)]
        return Predicted(tags, {"generations": parse_rate(answers, tags)}, answers)

    def _classify(self, lm: Any, prefix: str, batches: Any, labels: list[str], gold: list[int]) -> Predicted:
        """The label whose verbalizer has the highest log-probability summed over its tokens (the headline, as
        lm-evaluation-harness's ``acc``), and beside it per byte of the verbalizer (``acc_norm``)."""
        space = " " if self._template("classification").split("{label}")[0].endswith(" ") else ""
        words = [space + w for w in self._verbalizers(labels)]
        by_sum, by_byte = [], []
        for batch in batches:
            queries = [self._filled("classification", e, None) for e in batch]
            scores = lm.score(prefix, [(q, w) for q in queries for w in words])
            for row in range(len(batch)):
                mine = scores[row * len(words) : (row + 1) * len(words)]
                normalised = [score / len(word.encode()) for score, word in zip(mine, words, strict=True)]
                by_sum.append(max(range(len(words)), key=mine.__getitem__))  # ties: the first label
                by_byte.append(max(range(len(words)), key=normalised.__getitem__))
        accuracy_norm = sum(p == g for p, g in zip(by_byte, gold, strict=True)) / max(len(gold), 1)
        return Predicted(by_sum, {"accuracy_norm": accuracy_norm})


def parse_rate(answers: list[str], tags: list[list[str]]) -> dict[str, int]:
    """What the generations were: answers with at least one valid entity span, answers saying there is none
    (``none`` or nothing), and answers with text that gave no valid span (wrong format, unknown type, words not
    in the sentence)."""
    spans = sum(any(t != "O" for t in row) for row in tags)
    said_none = sum(a.strip().strip(".").lower() in ("", "none") for a in answers)
    return {
        "answers": len(answers),
        "with_entities": spans,
        "said_none": said_none,
        "unparsed": len(answers) - spans - said_none,
    }


@methods.register("zero_shot")
class ZeroShot(InContext):
    """The instruction and the template only: no demonstrations, so nothing depends on the seed."""

    Params = ZeroShotParams
    seeded = False

    def conflict(self, task_type: str, regime: Any) -> str | None:
        if regime.few_shot:
            return "zero_shot sees no training examples; a few-shot regime would not change it"
        return super().conflict(task_type, regime)

    def demonstrations(self, data: Any, task_type: str, seed: int) -> list[Any]:
        return []
