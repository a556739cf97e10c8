"""Named-entity recognition: CoNLL files, first-sub-token labels, word-level seqeval scoring."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
from seqeval.metrics.sequence_labeling import get_entities
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from harness.errors import BenchError
from harness.metrics import ner_metrics
from harness.tasks.base import TaskSpec

TAG = re.compile(r"^(O|[BI]-[^\s]+)$")
IGNORE = -100  # label of positions the loss and the metric never see


def read_conll(path: Path) -> list[dict]:
    """Sentences from a ``TOKEN ... TAG`` file (blank line between sentences, ``-DOCSTART-`` skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BenchError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    sentences: list[dict] = []
    current: dict = {"tokens": [], "tags": [], "line": 0}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("-DOCSTART-"):
            if current["tokens"]:
                sentences.append(current)
            current = {"tokens": [], "tags": [], "line": 0}
            continue
        parts = line.split()
        if len(parts) < 2:
            raise BenchError(f"{path}:{lineno}: expected 'TOKEN TAG' separated by whitespace, got {line!r}")
        if not TAG.match(parts[-1]):
            raise BenchError(f"{path}:{lineno}: unknown tag {parts[-1]!r}; expected O, B-TYPE or I-TYPE (IOB2)")
        current["line"] = current["line"] or lineno
        current["tokens"].append(parts[0])
        current["tags"].append(parts[-1])
    if current["tokens"]:
        sentences.append(current)
    if not sentences:
        raise BenchError(f"{path}: no sentences; expected lines of 'TOKEN TAG' with a blank line between sentences")
    return sentences


class NerFamily:
    headline: ClassVar[str] = "f1"
    metrics: ClassVar[tuple[str, ...]] = ("f1", "precision", "recall", "f1_strict")  # scalar validation metrics
    model_columns: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "token_type_ids", "labels")

    def read(self, path: Path, spec: TaskSpec) -> list[dict]:
        if spec.format != "conll":
            raise BenchError(f"task {spec.name!r}: NER data must be in 'conll' format, not {spec.format!r}")
        return read_conll(path)

    def from_hub(self, rows: Any, spec: TaskSpec) -> list[dict]:
        names = rows.features["ner_tags"].feature.names
        return [
            {"tokens": r["tokens"], "tags": [names[t] for t in r["ner_tags"]], "line": i + 1}
            for i, r in enumerate(rows)
            if r["tokens"]
        ]

    def label_list(self, train: list[dict]) -> list[str]:
        types = sorted({tag[2:] for s in train for tag in s["tags"] if tag != "O"})
        return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]

    def check_labels(self, examples: list[dict], labels: list[str], path: str) -> None:
        known = set(labels)
        for s in examples:
            for offset, tag in enumerate(s["tags"]):
                if tag not in known:
                    raise BenchError(
                        f"{path}:{s['line'] + offset}: tag {tag!r} does not occur in the training data "
                        f"(known: {', '.join(labels)})"
                    )

    def words(self, example: dict) -> tuple[str, ...]:
        return tuple(example["tokens"])

    def strata(self, example: dict) -> Counter:
        """Entity mentions per type (a mention starts at B-, or at an I- that follows another type)."""
        return Counter(type_ for type_, _, _ in get_entities(example["tags"]))

    def gold(self, examples: list[dict], labels: list[str]) -> list[list[str]]:
        return [s["tags"] for s in examples]

    def tokenize(self, examples: list[dict], tokenizer: Any, labels: list[str], max_length: int, cache: Path) -> Any:
        label_id = {label: i for i, label in enumerate(labels)}
        table = datasets.Dataset.from_dict(
            {
                "tokens": [s["tokens"] for s in examples],
                "tags": [[label_id[t] for t in s["tags"]] for s in examples],
            }
        )

        def encode(batch: dict) -> dict:
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            enc["labels"], enc["first_word"] = [], []
            for i, tags in enumerate(batch["tags"]):
                labels_i, first_i, previous = [], [], None
                for word in enc.word_ids(i):
                    if word is None or word == previous:
                        labels_i.append(IGNORE)
                    else:  # the first sub-token of a word carries its label
                        labels_i.append(tags[word])
                        first_i.append(word)
                    previous = word if word is not None else previous
                enc["labels"].append(labels_i)
                enc["first_word"].append(first_i)
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            return dict(enc)

        return table.map(encode, batched=True, remove_columns=["tokens", "tags"], cache_file_name=str(cache))

    def auto_model(self) -> Any:
        return AutoModelForTokenClassification

    def collator(self, tokenizer: Any) -> Any:
        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE, return_tensors="pt")

    def decode(self, argmax: list[Any], inputs: Any, gold: list[list[str]], labels: list[str]) -> list[list[str]]:
        """Word-level tags from first-sub-token predictions.

        Words cut off by ``max_length`` (or that tokenise to nothing) are predicted ``O`` and still scored
        against their gold tags, so truncation costs recall instead of silently shrinking the test set.
        """
        out = []
        for ids, label_row, first_word, words in zip(argmax, inputs["labels"], inputs["first_word"], gold, strict=True):
            tags = ["O"] * len(words)
            positions = [p for p, lab in enumerate(label_row) if lab != IGNORE]
            for position, word in zip(positions, first_word, strict=True):
                tags[word] = labels[int(ids[position])]
            out.append(tags)
        return out

    def score(self, gold: list[list[str]], pred: list[list[str]]) -> dict:
        return ner_metrics(gold, pred)

    def example_scores(self, gold: list[list[str]], pred: list[list[str]]) -> list[list[int]]:
        """Per sentence: correct, predicted and gold entities (F1 is not a mean over sentences)."""
        return entity_counts(gold, pred).tolist()


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence: (correct entities, predicted entities, gold entities), as seqeval's default mode counts."""
    rows = []
    for g, p in zip(gold, pred, strict=True):
        gold_entities, pred_entities = set(get_entities(list(g))), set(get_entities(list(p)))
        rows.append((len(gold_entities & pred_entities), len(pred_entities), len(gold_entities)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)
