"""Every metric has one implementation here: seqeval entity F1 for NER, accuracy and macro-F1 for classification."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2
from sklearn.metrics import f1_score as sk_f1_score


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Word-level entity scores.

    The headline ``f1`` uses seqeval's default mode, which matches conlleval (an ``I-`` tag after ``O``
    starts an entity). ``f1_strict`` applies the strict IOB2 scheme, where such a span is not an entity.
    """
    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    if [len(s) for s in gold] != [len(s) for s in pred]:
        raise ValueError("gold and predicted sentences must have the same number of words")
    with warnings.catch_warnings():  # seqeval averages over empty arrays when no entity is present
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {
        name: {
            "precision": v["precision"],
            "recall": v["recall"],
            "f1": v["f1-score"],
            "support": int(v["support"]),
        }
        for name, v in report.items()
        if not name.endswith(" avg")
    }
    micro = report["micro avg"]  # the same numbers as f1_score/precision_score/recall_score, one pass
    return {
        "f1": float(micro["f1-score"]),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1_strict": float(f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0)),
        "per_type": per_type,
    }


def classification_metrics(gold: Sequence[int], pred: Sequence[int]) -> dict:
    """Accuracy (headline) and macro-averaged F1 over the classes present in gold or predictions."""
    if len(gold) != len(pred):
        raise ValueError("gold and predictions must have the same length")
    if not gold:
        raise ValueError("cannot score an empty split")
    accuracy = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    return {
        "accuracy": accuracy,
        "macro_f1": float(sk_f1_score(gold, pred, average="macro", zero_division=0)),
    }
