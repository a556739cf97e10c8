"""What a task is (its suite spec) and what a task family must provide to the training loop."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo, field_validator

from harness.core.config import Strict
from harness.core.errors import BenchError
from harness.core.registry import Registry

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


def _known_family(name: str) -> str:
    if name not in families:
        raise ValueError(families.unknown_message(name))
    return name


class TaskSpec(Strict):
    """A dataset in CoNLL (NER) or TSV/CSV (classification) form; a new dataset needs only this in YAML."""

    name: Slug
    type: Annotated[str, AfterValidator(_known_family)]  # a registered task family
    format: str  # one of the family's file formats
    files: TaskFiles | None = None
    hub: HubSource | None = None
    text_column: str = "sentence"
    label_column: str = "label"
    validation_from_train: Annotated[int, Field(gt=0)] = 1000

    @field_validator("format")
    @classmethod
    def _family_reads_it(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind in families and value not in families.get(kind).formats:
            raise ValueError(f"{kind} data is read from {' or '.join(map(repr, families.get(kind).formats))} files")
        return value

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


@dataclass
class Predicted:
    """A prompt or rule baseline's answers in the family's decoded form (tags per word, class ids), what else its
    answers showed (length-normalised accuracy, how many generations parsed), and the raw generations, for audit."""

    values: list[Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    generations: list[str] | None = None


@dataclass
class Prompted:
    """What a prompt baseline hands its task family to answer a split: the language model, the shared prefix
    (instruction and demonstrations), the queries (each cut just before its answer), the template, the method's
    prompt fields (verbalizers, type names, max_new_tokens, batch_size) and a progress callback (queries done)."""

    lm: Any
    prefix: str
    queries: list[str]
    template: str
    params: Any
    advance: Callable[[int], None] | None = None


class TaskFamily(Protocol):
    """What differs between task types (NER, classification), implemented once per family: data, model head,
    decoding, scoring, prompt format and majority rules. Nothing outside ``tasks/`` asks which family it has."""

    headline: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    model_columns: ClassVar[tuple[str, ...]]
    formats: ClassVar[tuple[str, ...]]  # the values of a task's ``format`` this family reads
    peft_task_type: ClassVar[str]  # peft's TaskType for this head (TOKEN_CLS, SEQ_CLS)
    majority_rules: ClassVar[tuple[str, ...]]  # what `majority` may predict from (the first is the default)
    answer_slot: ClassVar[str]  # where a prompt template puts the answer: {label}, {entities}
    has_entities: ClassVar[bool]  # whether a probe can tell entity words from context words
    attackable: ClassVar[bool]  # one label per text: what a black-box text attack tries to flip
    default_template: ClassVar[str]

    def read(self, path: Path, spec: TaskSpec) -> list[Any]: ...

    def from_hub(self, rows: Any, spec: TaskSpec) -> list[Any]: ...

    def label_list(self, train: list[Any]) -> list[str]: ...

    def check_labels(self, examples: list[Any], labels: list[str], path: str) -> None: ...

    def strata(self, example: Any) -> Counter: ...

    def words(self, example: Any) -> tuple[str, ...]: ...

    def entity_words(self, example: Any) -> list[bool]:
        """Per word of ``words(example)``: whether it is part of an entity mention (never, for a classifier)."""
        ...

    def rewritten(self, example: Any, words: list[str | None]) -> Any:
        """``example`` with its words replaced (None: removed), the gold answer kept (NER: the removed words' tags
        go with them, so the rest stay aligned)."""
        ...

    def gold(self, examples: list[Any], labels: list[str]) -> list[Any]: ...

    def tokenize(self, examples: list[Any], tokenizer: Any, labels: list[str], max_length: int, cache: Path) -> Any: ...

    def auto_model(self) -> Any: ...

    def collator(self, tokenizer: Any) -> Any: ...

    def example_output(self, argmax: Any, length: int) -> Any:
        """One example's argmax from a padded batch row (per token for a tagger, one id for a classifier)."""
        ...

    def decode(self, logits: list[Any], inputs: Any, gold: list[Any], labels: list[str]) -> list[Any]: ...

    def score(self, gold: list[Any], pred: list[Any]) -> dict: ...

    def example_scores(self, gold: list[Any], pred: list[Any]) -> list[Any]: ...

    def tables(self, test_metrics: dict[str, Any]) -> dict[str, Any]:
        """Nested result tables worth their own tracking artifact (NER's per-type scores), by file name."""
        ...

    def majority(self, train: Split, examples: list[Any], rule: str) -> list[Any]:
        """The ``rule`` floor's predictions for ``examples`` from the training split."""
        ...

    def prompt_text(self, example: Any) -> str:
        """What fills a template's {text}."""
        ...

    def instruction(self, labels: list[str], params: Any) -> str:
        """The default instruction of a prompt (naming the labels or entity types)."""
        ...

    def answer(self, example: Any, labels: list[str], params: Any) -> str:
        """A demonstration's answer, as the prompt asks for it."""
        ...

    def prompt_predict(self, prompted: Prompted, split: Split, labels: list[str]) -> Predicted:
        """Answers to the queries: scored verbalizers (classification) or parsed generations (NER)."""
        ...


families: Registry[TaskFamily] = Registry("task type")


# Batches are padded to a multiple of this many tokens: with fewer distinct shapes, oneDNN's bf16 GEMM kernels are
# built once and reused (measured: a dense ner default cell trains 9 % faster in bf16; see docs/performance.md).
PAD_MULTIPLE = 8


def most_frequent(values: list[Any]) -> Any:
    """The most frequent value; ties go to the smallest, so the choice never depends on data order."""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))


def read_text(path: Path) -> str:
    """A data file's text; one that is not UTF-8 is a ``file:line`` error naming the column and byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line, column = data.count(b"\n", 0, e.start) + 1, e.start - line_start + 1
        raise BenchError(f"{path}:{line}: not UTF-8 text ({e.reason} at column {column}, byte {e.start})") from None


def fingerprint_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
