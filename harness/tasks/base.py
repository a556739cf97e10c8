"""What a task is (its suite spec) and what a task family must provide to the training loop."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import Field, StringConstraints

from harness.schema import Strict

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class TaskFiles(Strict):
    """Split files, relative to the data directory (or absolute). Without ``validation`` it is carved from train."""

    train: str
    validation: str | None = None
    test: str


class HubSource(Strict):
    """Where `datasets` finds the task on the hub when no local files are present."""

    id: str
    config: str | None = None
    splits: dict[Literal["train", "validation", "test"], str] = Field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"}
    )


class TaskSpec(Strict):
    """A dataset in CoNLL (NER) or TSV/CSV (classification) form; a new dataset needs only this in YAML."""

    name: Slug
    type: Literal["ner", "classification"]
    format: Literal["conll", "tsv", "csv"]
    files: TaskFiles | None = None
    hub: HubSource | None = None
    text_column: str = "sentence"
    label_column: str = "label"
    validation_from_train: Annotated[int, Field(gt=0)] = 1000

    def identity(self) -> dict[str, Any]:
        """The fields that change results (paths and hub ids do not: the data fingerprint covers content)."""
        return self.model_dump(exclude={"files", "hub"})


@dataclass(frozen=True)
class Split:
    """One split: model inputs (a tokenised `datasets.Dataset`), the gold answers to score against, and the
    raw examples (words and tags, or text and label) for methods that read text rather than token ids."""

    inputs: Any  # datasets.Dataset with model columns plus `length`
    gold: list[Any]
    examples: list[Any]


@dataclass(frozen=True)
class TaskData:
    train: Split
    validation: Split
    test: Split
    labels: list[str]
    fingerprint: str
    test_source: str  # where the reported split comes from, e.g. "sst2/validation.tsv (GLUE dev)"
    shots: int | None = None  # k when train and validation are k-shot samples
    carve_removed: int | None = None  # training examples dropped so that none contains or sits in a validation one


class TaskFamily(Protocol):
    """NER and classification each implement this once; the loop never asks which one it has."""

    headline: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    model_columns: ClassVar[tuple[str, ...]]

    def read(self, path: Path, spec: TaskSpec) -> list[Any]: ...

    def from_hub(self, rows: Any, spec: TaskSpec) -> list[Any]: ...

    def label_list(self, train: list[Any]) -> list[str]: ...

    def check_labels(self, examples: list[Any], labels: list[str], path: str) -> None: ...

    def strata(self, example: Any) -> Counter: ...

    def words(self, example: Any) -> tuple[str, ...]: ...

    def gold(self, examples: list[Any], labels: list[str]) -> list[Any]: ...

    def tokenize(self, examples: list[Any], tokenizer: Any, labels: list[str], max_length: int, cache: Path) -> Any: ...

    def auto_model(self) -> Any: ...

    def collator(self, tokenizer: Any) -> Any: ...

    def decode(self, logits: list[Any], inputs: Any, gold: list[Any], labels: list[str]) -> list[Any]: ...

    def score(self, gold: list[Any], pred: list[Any]) -> dict: ...

    def example_scores(self, gold: list[Any], pred: list[Any]) -> list[Any]: ...


def fingerprint_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
