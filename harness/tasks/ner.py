"""Named-entity recognition: CoNLL files, first-sub-token labels, word-level seqeval scoring."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
from seqeval.metrics.sequence_labeling import get_entities
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from harness.core.errors import BenchError
from harness.tasks.base import PAD_MULTIPLE, Predicted, Prompted, Split, TaskSpec, families, most_frequent, read_text
from harness.tasks.metrics import ner_metrics

# what a prompt tells the model each CoNLL type is called; other types are shown lower-cased
TYPE_NAMES = {"PER": "person", "ORG": "organisation", "LOC": "location", "MISC": "miscellaneous"}
ITEM = re.compile(r"(.+?)\s*\(\s*([^()]+?)\s*\)\.?")

TAG = re.compile(r"^(O|[BI]-[^\s]+)$")
IGNORE = -100  # label of positions the loss and the metric never see


def read_conll(path: Path) -> list[dict]:
    """Sentences from a ``TOKEN ... TAG`` file (blank line between sentences, ``-DOCSTART-`` skipped)."""
    text = read_text(path)
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
    formats: ClassVar[tuple[str, ...]] = ("conll",)
    peft_task_type: ClassVar[str] = "TOKEN_CLS"
    majority_rules: ClassVar[tuple[str, ...]] = ("class", "word")  # word: each word's most frequent training tag
    answer_slot: ClassVar[str] = "{entities}"
    attackable: ClassVar[bool] = False
    has_entities: ClassVar[bool] = True
    default_template: ClassVar[str] = "Sentence: {text}\nEntities: {entities}"

    def read(self, path: Path, spec: TaskSpec) -> list[dict]:
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

    def entity_words(self, example: dict) -> list[bool]:
        return [tag != "O" for tag in example["tags"]]

    def rewritten(self, example: dict, words: list[str | None]) -> dict:
        kept = [(w, t) for w, t in zip(words, example["tags"], strict=True) if w is not None]
        return example | {"tokens": [w for w, _ in kept], "tags": [t for _, t in kept]}

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
        return DataCollatorForTokenClassification(
            tokenizer, label_pad_token_id=IGNORE, return_tensors="pt", pad_to_multiple_of=PAD_MULTIPLE
        )

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

    def example_output(self, argmax: Any, length: int) -> Any:
        return argmax[:length]

    def tables(self, test_metrics: dict[str, Any]) -> dict[str, Any]:
        return {"per_type.json": test_metrics["per_type"]} if "per_type" in test_metrics else {}

    def majority(self, train: Split, examples: list[dict], rule: str) -> list[list[str]]:
        """``class``: every word gets the most frequent training tag (O); ``word``: each word its own most frequent
        training tag (unseen words: O), repaired to valid IOB2."""
        if rule == "class":
            tag = most_frequent([t for s in train.examples for t in s["tags"]])
            return [[tag] * len(s["tokens"]) for s in examples]
        seen: dict[str, list[str]] = defaultdict(list)
        for sentence in train.examples:
            for word, tag in zip(sentence["tokens"], sentence["tags"], strict=True):
                seen[word].append(tag)
        best = {word: most_frequent(tags) for word, tags in seen.items()}
        return [repair_iob2([best.get(word, "O") for word in s["tokens"]]) for s in examples]

    def prompt_text(self, example: dict) -> str:
        return " ".join(example["tokens"])

    def instruction(self, labels: list[str], params: Any) -> str:
        names = ", ".join(type_names(labels, params.type_names).values())
        return (
            "List the named entities in each sentence as 'text (type)', separated by '; ', or write 'none'. "
            f"Types: {names}."
        )

    def answer(self, example: dict, labels: list[str], params: Any) -> str:
        names = type_names(labels, params.type_names)
        words = example["tokens"]
        found = [f"{' '.join(words[s : e + 1])} ({names[t]})" for t, s, e in get_entities(example["tags"])]
        return "; ".join(found) or "none"

    def prompt_predict(self, prompted: Prompted, split: Split, labels: list[str]) -> Predicted:
        """The model lists the entities as ``text (type); …``; the answers are parsed back into IOB2 tags."""
        names = type_names(labels, prompted.params.type_names)
        types = {name.lower(): t for t, name in names.items()} | {t.lower(): t for t in names}
        params = prompted.params
        answers = prompted.lm.generate(
            prompted.prefix, prompted.queries, params.max_new_tokens, params.batch_size, prompted.advance
        )
        tags = [parse_entities(a, e["tokens"], types) for a, e in zip(answers, split.examples, strict=True)]
        return Predicted(tags, {"generations": parse_rate(answers, tags)}, answers)


families.register("ner")(NerFamily())


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence: (correct entities, predicted entities, gold entities), as seqeval's default mode counts."""
    rows = []
    for g, p in zip(gold, pred, strict=True):
        gold_entities, pred_entities = set(get_entities(list(g))), set(get_entities(list(p)))
        rows.append((len(gold_entities & pred_entities), len(pred_entities), len(gold_entities)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def type_names(labels: list[str], given: dict[str, str] | None) -> dict[str, str]:
    """Each entity type of ``labels`` as a prompt names it: ``given``, else TYPE_NAMES, else lower-cased."""
    types = sorted({label[2:] for label in labels if label != "O"})
    return {t: (given or {}).get(t, TYPE_NAMES.get(t, t.lower())) for t in types}


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


def repair_iob2(tags: list[str]) -> list[str]:
    """An ``I-X`` that does not continue an ``X`` entity starts one: ``B-X``."""
    out = []
    for tag in tags:
        previous = out[-1] if out else "O"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
    return out
