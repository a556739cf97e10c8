"""From a task spec to tokenised train / validation / test splits, with seeded carving and subsets."""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from harness.core.atomic import write_json_atomic
from harness.core.errors import BenchError
from harness.tasks import families
from harness.tasks.base import Split, TaskData, TaskSpec, fingerprint_files
from harness.tasks.fewshot import sample_shots

SPLITS = ("train", "validation", "test")
TOKENIZE_VERSION = 1  # bump when tokenisation code changes, so cached arrow files are not reused
datasets.disable_progress_bars()  # tokenising takes seconds; its bars would only clutter the run log


def cache_dir() -> Path:
    root = Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "routebench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def read_splits(spec: TaskSpec, data_dir: Path) -> tuple[dict[str, list], dict[str, str], str]:
    """Raw examples per split, a printable source per split, and a content fingerprint."""
    family = families.get(spec.type)
    if spec.files is not None:
        paths = {s: data_dir / f for s in SPLITS if (f := getattr(spec.files, s)) is not None}
        missing = [p for p in paths.values() if not p.is_file()]
        if not missing:
            raw = {s: family.read(p, spec) for s, p in paths.items()}
            return raw, {s: str(p) for s, p in paths.items()}, fingerprint_files(list(paths.values()))
        if spec.hub is None:
            raise BenchError(
                f"task {spec.name!r}: data file not found: {missing[0]} (a relative path is read beside the suite "
                "file when it is there, else under $BENCH_DATA_DIR; a suite's data_dir replaces both)"
            )
    if spec.hub is None:
        raise BenchError(f"task {spec.name!r}: give `files` (CoNLL / TSV / CSV paths) or a `hub` dataset id")
    return _read_hub(spec, data_dir)


def _read_hub(spec: TaskSpec, data_dir: Path) -> tuple[dict[str, list], dict[str, str], str]:
    assert spec.hub is not None
    try:
        loaded = datasets.load_dataset(spec.hub.id, spec.hub.config)
    except Exception as e:  # offline, unknown id, bad config: all end the same way for the user
        raise BenchError(
            f"task {spec.name!r}: no local files under {data_dir} and the hub dataset {spec.hub.id!r} could not be "
            f"loaded ({type(e).__name__}); set BENCH_DATA_DIR or the suite's data_dir to a folder with the files"
        ) from None
    family = families.get(spec.type)
    raw = {s: family.from_hub(loaded[name], spec) for s, name in spec.hub.splits.items()}
    fingerprint = hashlib.sha256("".join(loaded[n]._fingerprint for n in spec.hub.splits.values()).encode())
    return (
        raw,
        {s: f"{spec.hub.id}:{name}" for s, name in spec.hub.splits.items()},
        fingerprint.hexdigest()[:16],
    )


def _content_key(examples: list[Any], labels: list[str]) -> str:
    """The examples as read and the label list (their ids): whatever field of the task changes what is tokenised
    (file, format, text or label column) changes the key. A file fingerprint alone would let a re-run with
    another label column load the old labels from the cache."""
    content = json.dumps([examples, labels], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _tokenizer_key(tokenizer: Any) -> str:
    ident = f"{type(tokenizer).__name__}|{tokenizer.name_or_path}|{len(tokenizer)}|{TOKENIZE_VERSION}"
    return hashlib.sha256(ident.encode()).hexdigest()[:10]


def disjoint_carve(words: list[tuple[str, ...]], order: list[int], size: int) -> tuple[list[int], list[int], int]:
    """Validation carved out of training with no containment either way, in whole words: the first ``size``
    examples in ``order`` that no other example contains (SST-2's training set holds every phrase of each
    sentence's parse tree: a phrase chosen at random mostly sits inside a training sentence, and selection would
    reward memorisation); training is every other example except those inside a validation example. Returns
    (validation, training, how many training examples were removed)."""
    inside: set[tuple[str, ...]] = set()
    for phrase in words:
        inside |= _spans(phrase, proper=True)
    validation = [i for i in order if words[i] not in inside][:size]
    if len(validation) < size:
        raise BenchError(f"validation_from_train={size}: only {len(validation)} examples are not part of another")
    taken = set().union(*(_spans(words[i], proper=False) for i in validation))
    chosen = set(validation)
    rest = [i for i in order if i not in chosen]
    training = [i for i in rest if words[i] not in taken]
    return validation, training, len(rest) - len(training)


def _spans(phrase: tuple[str, ...], proper: bool) -> set[tuple[str, ...]]:
    """Every contiguous run of words in ``phrase`` (``proper``: shorter than the phrase)."""
    n = len(phrase)
    return {phrase[i:j] for i in range(n) for j in range(i + 1, n + 1) if not (proper and j - i == n)}


def _cached_carve(words: list[tuple[str, ...]], order: list[int], spec: TaskSpec) -> tuple[list, list, int]:
    """``disjoint_carve`` of ``spec.validation_from_train`` examples, kept on disk: it reads every phrase's spans
    (seconds on SST-2) and every cell needs it."""
    size = spec.validation_from_train
    if size >= len(order):
        raise BenchError(
            f"task {spec.name!r}: validation_from_train={size} leaves no training data ({len(order)} training examples)"
        )
    key = hashlib.sha256(json.dumps([words, order, size]).encode()).hexdigest()[:16]
    path = cache_dir() / f"{spec.name}-carve-{key}.json"
    if path.is_file():
        validation, training, removed = json.loads(path.read_text())
        return validation, training, removed
    carved = disjoint_carve(words, order, size)
    write_json_atomic(path, list(carved))
    return carved


def _seeded_order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


@dataclass(frozen=True)
class RawTask:
    """A task's splits as read and checked: raw examples, a printable source per split, the content fingerprint
    and the label list (from train)."""

    splits: dict[str, list]
    sources: dict[str, str]
    fingerprint: str
    labels: list[str]


def read_task(spec: TaskSpec, data_dir: Path) -> RawTask:
    """Every split read and every validation / test label checked against the training labels."""
    family = families.get(spec.type)
    raw, sources, fingerprint = read_splits(spec, data_dir)
    labels = family.label_list(raw["train"])
    for split in ("validation", "test"):
        if split in raw:
            family.check_labels(raw[split], labels, sources[split])
    return RawTask(raw, sources, fingerprint, labels)


def few_shot_split(spec: TaskSpec, examples: list[Any], shots: int, seed: int) -> tuple[list[int], list[int]]:
    """The k-shot training sample and, disjoint from it, the k-shot validation sample, both drawn by ``seed``."""
    strata = families.get(spec.type).strata
    try:
        picked = sample_shots(examples, strata, shots, seed)
        return picked, sample_shots(examples, strata, shots, seed, exclude=set(picked))
    except BenchError as e:
        raise BenchError(f"task {spec.name!r}, split seed {seed}: {e}") from None


def check_task(spec: TaskSpec, data_dir: Path, seeds: set[int], samples: set[tuple[int, int]]) -> str:
    """Open the task's data as a run will, so that a suite that validates does not fail on its data mid-run: every
    file read (existence, format, columns, tags / labels), the validation set carved from train if the cells
    with full data (``seeds``) need one (whether it can be made does not depend on the seed; the carve is cached
    for the run), and each (shots, split seed) few-shot sample drawn. Returns what was read, in one line."""
    task = read_task(spec, data_dir)
    family = families.get(spec.type)
    train = task.splits["train"]
    carved = ""
    if seeds and "validation" not in task.splits:
        words = [family.words(example) for example in train]
        _, _, removed = _cached_carve(words, _seeded_order(len(train), min(seeds)), spec)
        size = spec.validation_from_train
        carved = f"; validation {size:,} carved from train ({removed:,} training examples removed)"
    for shots, seed in sorted(samples):
        few_shot_split(spec, train, shots, seed)
    sizes = ", ".join(f"{split} {len(task.splits[split]):,}" for split in SPLITS if split in task.splits)
    return f"{spec.name}: {sizes} examples, {len(task.labels)} labels{carved}"


def prepare_task(
    spec: TaskSpec,
    data_dir: Path,
    tokenizer: Any,
    *,
    max_length: int,
    seed: int,
    train_subset: int | None,
    validation_subset: int | None,
    shots: int | None = None,
) -> TaskData:
    """Read, check, tokenise (cached by content), then carve and subsample by ``seed``.

    With ``shots`` = k, train and validation are k-per-class samples of the training split drawn by ``seed``
    (the split seed), disjoint from each other; the subset sizes do not apply.
    """
    family = families.get(spec.type)
    task = read_task(spec, data_dir)
    raw, labels = task.splits, task.labels

    def tokenized(split: str) -> Split:
        return tokenized_split(spec, raw[split], labels, tokenizer, max_length)

    train = tokenized("train")
    carve_removed = None
    if shots is not None:
        picked, held_out = few_shot_split(spec, raw["train"], shots, seed)
        train_part, validation_part = _select(train, picked), _select(train, held_out)
    else:
        train_order = _seeded_order(len(train.gold), seed)
        if "validation" in raw:
            validation = tokenized("validation")
            validation_order = _seeded_order(len(validation.gold), seed)
        else:
            words = [family.words(example) for example in raw["train"]]
            validation_order, train_order, carve_removed = _cached_carve(words, train_order, spec)
            validation = train
        train_part = _select(train, train_order[:train_subset])
        validation_part = _select(validation, validation_order[:validation_subset])
    return TaskData(
        train=train_part,
        validation=validation_part,
        test=tokenized("test"),
        labels=labels,
        fingerprint=task.fingerprint,
        test_source=task.sources["test"],
        shots=shots,
        carve_removed=carve_removed,
    )


def tokenized_split(spec: TaskSpec, examples: list[Any], labels: list[str], tokenizer: Any, max_length: int) -> Split:
    """``examples`` tokenised (cached on disk by content, tokenizer and length) with their gold answers."""
    family = families.get(spec.type)
    key = f"{_content_key(examples, labels)}-{_tokenizer_key(tokenizer)}-{max_length}"
    inputs = family.tokenize(examples, tokenizer, labels, max_length, cache_dir() / f"{spec.name}-{key}.arrow")
    return Split(inputs, family.gold(examples, labels), examples)


def sample(split: Split, size: int, seed: int) -> Split:
    """``size`` examples of ``split`` drawn by ``seed`` (all of it when it is not larger)."""
    return _select(split, _seeded_order(len(split.gold), seed)[:size])


def _select(split: Split, indices: list[int]) -> Split:
    indices = sorted(indices)  # keeps file order, so results do not depend on the shuffle beyond the choice
    return Split(split.inputs.select(indices), [split.gold[i] for i in indices], [split.examples[i] for i in indices])
