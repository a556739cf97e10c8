"""Calibration of predicted class probabilities: expected calibration error and the Brier score.

ECE (Naeini et al. 2015; as in Guo et al. 2017, "On Calibration of Modern Neural Networks", section 2): the top
class's confidence is binned into 15 equal-width bins over [0, 1]; ECE = Σ_b (n_b / n) · |accuracy_b − confidence_b|.
Equal width is the definition both papers use and what torchmetrics computes by default, so numbers compare with
theirs; equal-mass bins (Nixon et al. 2019) are steadier with few examples but are not what published ECEs mean.
Brier (1950): the mean over scored units of Σ_k (p_k − y_k)², summed over classes (0 perfect, 2 worst), via
scikit-learn. A unit is an example for classification and a word (its first sub-token) for NER."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss

BINS = 15


def expected_calibration_error(probabilities: np.ndarray, gold: np.ndarray, bins: int = BINS) -> float:
    """ECE over ``bins`` equal-width confidence bins (0-1); a bin holds confidences in (lower, upper]."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def calibration(probabilities: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """``ece`` and ``brier`` (×100, the report's points) of per-unit class probabilities against gold class ids."""
    brier = brier_score_loss(gold, probabilities, labels=list(range(probabilities.shape[1])), scale_by_half=False)
    return {"ece": 100 * expected_calibration_error(probabilities, gold), "brier": 100 * float(brier)}
