"""Metrics against hand-computed values, and NER scored on words, never on sub-tokens."""

from __future__ import annotations

import pytest
import torch

from harness.models.backbones import get_backbone
from harness.tasks.metrics import classification_metrics, ner_metrics
from harness.tasks.ner import NerFamily


def test_entity_f1_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O"]]
    m = ner_metrics(gold, pred)
    # 2 of 2 predicted entities are right, 2 of 3 gold entities found: P=1, R=2/3, F1=0.8
    assert m["precision"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(0.8)
    assert m["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_type"]["PER"]["f1"] == pytest.approx(1.0)


def test_default_mode_is_conlleval_and_strict_is_iob2():
    gold = [["O", "B-LOC", "I-LOC"]]
    pred = [["O", "I-LOC", "I-LOC"]]  # an entity begun with I-: conlleval accepts it, strict IOB2 does not
    m = ner_metrics(gold, pred)
    assert m["f1"] == pytest.approx(1.0)
    assert m["f1_strict"] == pytest.approx(0.0)


def test_accuracy_and_macro_f1_by_hand():
    m = classification_metrics([0, 1, 1, 1], [0, 1, 0, 1])
    assert m["accuracy"] == pytest.approx(0.75)
    # class 0: P=1/2, R=1, F1=2/3; class 1: P=1, R=2/3, F1=0.8
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


@pytest.fixture(scope="module")
def tokenizer():
    return get_backbone("tiny-bert").tokenizer()


def _encode(tokenizer, sentence, tags, labels, max_length, tmp_path):
    family = NerFamily()
    examples = [{"tokens": sentence, "tags": tags, "line": 1}]
    return family, family.tokenize(examples, tokenizer, labels, max_length, tmp_path / "cache.arrow")


def test_only_first_sub_tokens_carry_labels_and_scores_are_per_word(tokenizer, tmp_path):
    words, gold = ["Peter", "Kowalczyk", "visited", "Muzaffarabad"], ["B-PER", "I-PER", "O", "B-LOC"]
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    family, inputs = _encode(tokenizer, words, gold, labels, 32, tmp_path)
    pieces = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert pieces[2:6] == ["ko", "##wal", "##cz", "##yk"]  # several sub-tokens for one word
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    first = {word_ids.index(w) for w in range(len(words))}
    assert [lab != -100 for lab in inputs["labels"][0]] == [i in first for i in range(len(pieces))]

    # The model is right on every first sub-token and says O on every continuation sub-token.
    ids = []
    for i, w in enumerate(word_ids):
        ids.append(labels.index(gold[w]) if w is not None and i in first else labels.index("O"))
    pred = family.decode([torch.tensor(ids)], inputs, [gold], labels)
    assert pred == [gold]
    assert family.score([gold], pred)["f1"] == 1.0

    # Scored on sub-tokens (continuations labelled I-TYPE, as some scripts do) the same output loses entities.
    sub_gold, sub_pred = [], []
    for i, w in enumerate(word_ids):
        if w is None:
            continue
        tag = gold[w] if i in first else gold[w].replace("B-", "I-")
        sub_gold.append(tag)
        sub_pred.append(labels[ids[i]])
    assert ner_metrics([sub_gold], [sub_pred])["f1"] < 1.0


def test_words_cut_by_max_length_are_predicted_o_and_still_scored(tokenizer, tmp_path):
    words = ["the"] * 10 + ["Paris"]
    gold = ["O"] * 10 + ["B-LOC"]
    labels = ["O", "B-LOC", "I-LOC"]
    family, inputs = _encode(tokenizer, words, gold, labels, 8, tmp_path)
    assert len(inputs["input_ids"][0]) == 8
    everything_loc = torch.full((8,), labels.index("B-LOC"))
    pred = family.decode([everything_loc], inputs, [gold], labels)
    assert len(pred[0]) == len(words) and pred[0][-1] == "O"  # the truncated entity is missed, not dropped
    assert family.score([gold], pred)["recall"] == 0.0
