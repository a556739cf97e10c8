"""What a trained cell measures after training, beyond its clean test score (``records.measures``): calibration and
inference speed from the test pass itself, the train–validation gap, each robustness probe's score on its
perturbed copy of the test set, and an adversarial attack's success."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.evaluation.attack import AttackParams, attack_measures
from harness.evaluation.calibration import calibration
from harness.evaluation.probes import probe_name, probes
from harness.evaluation.probes.base import ProbeParams
from harness.records.measures import probe_measures
from harness.run.train import Batches, Outputs, TrainResult, evaluate
from harness.tasks import families
from harness.tasks.base import PAD_MULTIPLE, Split, TaskData, TaskSpec
from harness.tasks.data import sample, tokenized_split


@dataclass
class Scorer:
    """Scores any split of the cell's task with the trained model: the headline ×100 and the outputs."""

    model: torch.nn.Module
    spec: TaskSpec
    data: TaskData
    tokenizer: Any
    collate: Any
    compute: Any
    batch_size: int
    max_length: int

    @property
    def family(self) -> Any:
        return families.get(self.spec.type)

    def __call__(self, split: Split, confidence: bool = False) -> tuple[float, Outputs]:
        batches = Batches(split, self.family, self.collate, self.compute)
        metrics, _, outputs = evaluate(self.model, batches, self.family, self.data.labels, self.batch_size, confidence)
        return 100 * metrics[self.family.headline], outputs

    def tokenized(self, examples: list[Any]) -> Split:
        return tokenized_split(self.spec, examples, self.data.labels, self.tokenizer, self.max_length)

    def text_probabilities(self, texts: list[list[str]]) -> np.ndarray:
        """Class probabilities of texts given as word lists, in one batch: the black box an attack queries."""
        self.model.eval()
        encoded = self.tokenizer(
            [" ".join(words) for words in texts],
            truncation=True,
            max_length=self.max_length,
            padding=True,
            pad_to_multiple_of=PAD_MULTIPLE,
            return_tensors="pt",
        )
        with self.compute.inference():
            logits = self.model(**self.compute.batch(dict(encoded))).logits
        return logits.float().softmax(-1).cpu().numpy()


def calibration_of(outputs: Outputs) -> dict[str, float]:
    """Calibration of the test predictions (their speed is a cost: ``speed_of``)."""
    return calibration(outputs.probabilities, outputs.gold) if outputs.probabilities is not None else {}


def speed_of(outputs: Outputs) -> float:
    """Test examples predicted per second, the record's ``cost.test_examples_per_second``."""
    return round(len(outputs.argmax) / max(outputs.seconds, 1e-9), 1)


@dataclass
class Overfit:
    """The headline on a training sample (as large as validation, drawn by the cell's seed) where training
    stopped (``at_end``, before the best state returns) and at the selected step (``measures``)."""

    scorer: Scorer
    seed: int
    end: dict[str, float] = field(default_factory=dict)

    @property
    def train_sample(self) -> Split:
        return sample(self.scorer.data.train, len(self.scorer.data.validation.gold), self.seed)

    def at_end(self, model: torch.nn.Module, result: TrainResult) -> None:
        """Training's last state: the training sample's score and the last validation's."""
        last = result.history[-1]["validation"][self.scorer.family.headline]
        self.end = {"train": self.scorer(self.train_sample)[0], "val": 100 * last}

    def measures(self, best_validation: float) -> dict[str, float]:
        train_best, val_best = self.scorer(self.train_sample)[0], 100 * best_validation
        return {
            "overfit.train_best": train_best,
            "overfit.val_best": val_best,
            "overfit.gap_best": train_best - val_best,
            "overfit.train_end": self.end["train"],
            "overfit.val_end": self.end["val"],
            "overfit.gap_end": self.end["train"] - self.end["val"],
        }


def perturbed(params: ProbeParams, test: Split, family: Any) -> list[Any]:
    """The test examples rewritten by the probe, one seeded stream over the split in file order."""
    probe, rng = probes.get(params.kind)(params), random.Random(params.seed)
    return [
        family.rewritten(example, probe.rewrite(list(family.words(example)), family.entity_words(example), rng))
        for example in test.examples
    ]


def probe_scores(params: list[ProbeParams], scorer: Scorer, clean: float) -> dict[str, float]:
    """Per probe: the headline on its perturbed test set and the drop from the clean score (points)."""
    measures = {}
    for p in params:
        score, _ = scorer(scorer.tokenized(perturbed(p, scorer.data.test, scorer.family)))
        score_name, drop_name = probe_measures(probe_name(p))
        measures |= {score_name: score, drop_name: clean - score}
    return measures


def attack_of(params: AttackParams, scorer: Scorer, predictions: list[Any]) -> dict[str, float]:
    """DeepWordBug on the test examples the model gets right (``attack.attack_measures``)."""
    test, family = scorer.data.test, scorer.family
    words = [list(family.words(example)) for example in test.examples]
    correct = [p == g for p, g in zip(predictions, test.gold, strict=True)]
    unk = scorer.tokenizer.unk_token
    return attack_measures(words, test.gold, correct, scorer.text_probabilities, unk, params)
