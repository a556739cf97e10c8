"""Sequence classification: TSV/CSV files with a text and a label column, accuracy and macro-F1."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import datasets
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from harness.core.errors import BenchError
from harness.tasks.base import PAD_MULTIPLE, Predicted, Prompted, Split, TaskSpec, families, most_frequent, read_text
from harness.tasks.metrics import classification_metrics


def read_table(path: Path, fmt: str, text_column: str, label_column: str) -> list[dict]:
    """Rows of a header-first CSV (standard quoting) or TSV (standard quoting when the file is written that way,
    else GLUE style: no quoting, a quote character is text)."""
    text = read_text(path)
    dialect = {"delimiter": "\t", "quoting": _tsv_quoting(text)} if fmt == "tsv" else {"delimiter": ","}
    reader = csv.reader(io.StringIO(text, newline=""), **dialect)
    header = next(reader, None)
    if not header:
        raise BenchError(f"{path}: empty file; expected a header row with {text_column!r} and {label_column!r}")
    for column in (text_column, label_column):
        if column not in header:
            raise BenchError(f"{path}:1: missing column {column!r} (found: {', '.join(header)})")
    text_at, label_at = header.index(text_column), header.index(label_column)
    rows = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise BenchError(f"{path}:{reader.line_num}: expected {len(header)} {fmt.upper()} fields, got {len(row)}")
        label = row[label_at].strip()
        if not label:
            raise BenchError(f"{path}:{reader.line_num}: empty label in column {label_column!r}")
        rows.append({"text": row[text_at], "label": label, "line": reader.line_num})
    if not rows:
        raise BenchError(f"{path}: no data rows after the header")
    return rows


def _tsv_quoting(text: str) -> int:
    """``csv.QUOTE_MINIMAL`` when the TSV reads as standard quoting, i.e. writing back what that reads (as pandas
    and the csv module write: fields holding a quote, tab or newline quoted, or every field quoted) gives the
    file again; else ``csv.QUOTE_NONE``, GLUE's convention, where a lone quote character is part of the text."""
    if '"' not in text:
        return csv.QUOTE_NONE  # nothing to decide, and the fast path for GLUE's files
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True))
    except csv.Error:
        return csv.QUOTE_NONE
    for quoting in (csv.QUOTE_MINIMAL, csv.QUOTE_ALL):
        written = io.StringIO()
        csv.writer(written, delimiter="\t", quoting=quoting, lineterminator="\n").writerows(rows)
        if written.getvalue().rstrip("\n") == text.replace("\r\n", "\n").rstrip("\n"):
            return csv.QUOTE_MINIMAL
    return csv.QUOTE_NONE


class ClassificationFamily:
    headline: ClassVar[str] = "accuracy"
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1")  # scalar validation metrics
    model_columns: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "token_type_ids", "labels")
    formats: ClassVar[tuple[str, ...]] = ("tsv", "csv")
    peft_task_type: ClassVar[str] = "SEQ_CLS"
    majority_rules: ClassVar[tuple[str, ...]] = ("class",)
    answer_slot: ClassVar[str] = "{label}"
    attackable: ClassVar[bool] = True
    has_entities: ClassVar[bool] = False
    default_template: ClassVar[str] = "Text: {text}\nLabel: {label}"

    def read(self, path: Path, spec: TaskSpec) -> list[dict]:
        return read_table(path, spec.format, spec.text_column, spec.label_column)

    def from_hub(self, rows: Any, spec: TaskSpec) -> list[dict]:
        return [
            {"text": r[spec.text_column], "label": str(r[spec.label_column]), "line": i + 1}
            for i, r in enumerate(rows)
            if r[spec.label_column] is not None and int(r[spec.label_column]) >= 0  # GLUE test labels are -1
        ]

    def label_list(self, train: list[dict]) -> list[str]:
        found = {row["label"] for row in train}
        numeric = all(label.lstrip("-").isdigit() for label in found)
        return sorted(found, key=int) if numeric else sorted(found)

    def check_labels(self, examples: list[dict], labels: list[str], path: str) -> None:
        known = set(labels)
        for row in examples:
            if row["label"] not in known:
                raise BenchError(
                    f"{path}:{row['line']}: label {row['label']!r} does not occur in the training data "
                    f"(known: {', '.join(labels)})"
                )

    def strata(self, example: dict) -> Counter:
        return Counter([example["label"]])

    def words(self, example: dict) -> tuple[str, ...]:
        return tuple(example["text"].split())

    def entity_words(self, example: dict) -> list[bool]:
        return [False] * len(self.words(example))

    def rewritten(self, example: dict, words: list[str | None]) -> dict:
        return example | {"text": " ".join(w for w in words if w is not None)}

    def gold(self, examples: list[dict], labels: list[str]) -> list[int]:
        label_id = {label: i for i, label in enumerate(labels)}
        return [label_id[row["label"]] for row in examples]

    def tokenize(self, examples: list[dict], tokenizer: Any, labels: list[str], max_length: int, cache: Path) -> Any:
        table = datasets.Dataset.from_dict(
            {"text": [row["text"] for row in examples], "labels": self.gold(examples, labels)}
        )

        def encode(batch: dict) -> dict:
            enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            return dict(enc)

        return table.map(encode, batched=True, remove_columns=["text"], cache_file_name=str(cache))

    def auto_model(self) -> Any:
        return AutoModelForSequenceClassification

    def collator(self, tokenizer: Any) -> Any:
        return DataCollatorWithPadding(tokenizer, return_tensors="pt", pad_to_multiple_of=PAD_MULTIPLE)

    def decode(self, argmax: list[Any], inputs: Any, gold: list[int], labels: list[str]) -> list[int]:
        return [int(a) for a in argmax]

    def score(self, gold: list[int], pred: list[int]) -> dict:
        return classification_metrics(gold, pred)

    def example_scores(self, gold: list[int], pred: list[int]) -> list[int]:
        """Per example: 1 if right."""
        return [int(g == p) for g, p in zip(gold, pred, strict=True)]

    def example_output(self, argmax: Any, length: int) -> Any:
        return argmax

    def tables(self, test_metrics: dict[str, Any]) -> dict[str, Any]:
        return {}

    def majority(self, train: Split, examples: list[dict], rule: str) -> list[int]:
        return [most_frequent(train.gold)] * len(examples)  # the majority class for every example

    def prompt_text(self, example: dict) -> str:
        return example["text"]

    def instruction(self, labels: list[str], params: Any) -> str:
        return f"Classify each text as one of: {', '.join(verbalizers(labels, params.verbalizers))}."

    def answer(self, example: dict, labels: list[str], params: Any) -> str:
        return verbalizers(labels, params.verbalizers)[labels.index(example["label"])]

    def prompt_predict(self, prompted: Prompted, split: Split, labels: list[str]) -> Predicted:
        """The label whose verbalizer has the highest log-probability summed over its tokens after the query (the
        headline, as lm-evaluation-harness's ``acc``), and beside it per byte of the verbalizer (``acc_norm``)."""
        space = " " if prompted.template.split(self.answer_slot)[0].endswith(" ") else ""
        words = [space + w for w in verbalizers(labels, prompted.params.verbalizers)]
        pairs = [(query, word) for query in prompted.queries for word in words]
        advance = prompted.advance
        scores = prompted.lm.score(
            prompted.prefix,
            pairs,
            prompted.params.batch_size * len(words),
            None if advance is None else lambda done: advance(done // len(words)),
        )
        by_sum, by_byte = [], []
        for row in range(len(prompted.queries)):
            mine = scores[row * len(words) : (row + 1) * len(words)]
            normalised = [score / len(word.encode()) for score, word in zip(mine, words, strict=True)]
            by_sum.append(max(range(len(words)), key=mine.__getitem__))  # ties: the first label
            by_byte.append(max(range(len(words)), key=normalised.__getitem__))
        accuracy_norm = sum(p == g for p, g in zip(by_byte, split.gold, strict=True)) / max(len(split.gold), 1)
        return Predicted(by_sum, {"accuracy_norm": accuracy_norm})


families.register("classification")(ClassificationFamily())


def verbalizers(labels: list[str], given: dict[str, str] | None) -> list[str]:
    """Each label as a prompt says it: ``given`` (label → word), else the label itself."""
    return [(given or {}).get(label, label) for label in labels]
