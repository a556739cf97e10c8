"""What a cell measures beyond its headline test score, by name: calibration, the train–validation gap, robustness
probes, an adversarial attack, inference speed. A record keeps them in ``metrics.measures`` (name → number, in the
unit below); hypotheses and `bench check` name them like the score. Both halves read this table, so a name means
the same thing when it is written and when it is judged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ROUTER_METRICS = ("load_entropy", "busiest_expert_share")  # the router's telemetry, in routing_stats


@dataclass(frozen=True)
class Measure:
    pattern: str  # a full-match regular expression over names
    unit: str
    better: Literal["higher", "lower"]
    meaning: str


MEASURES = (
    Measure(r"ece", "points", "lower", "expected calibration error, 15 equal-width confidence bins (×100)"),
    Measure(r"brier", "points", "lower", "Brier score, summed over classes, mean over scored units (×100)"),
    Measure(
        r"overfit\.(train|val)_(best|end)",
        "points",
        "higher",
        "headline score on a training sample / on "
        "validation, at the selected step (best) and where training stopped (end)",
    ),
    Measure(r"overfit\.gap_(best|end)", "points", "lower", "training-sample score minus validation score"),
    Measure(r"robust\.[A-Za-z0-9_.+-]+\.score", "points", "higher", "the headline on the probe's perturbed test set"),
    Measure(r"robust\.[A-Za-z0-9_.+-]+\.drop", "points", "lower", "clean test score minus the probe's score"),
    Measure(r"attack\.success_rate", "points", "lower", "share of attacked examples whose prediction flipped"),
    Measure(r"attack\.perturbed_words", "words", "higher", "mean words changed per successful attack"),
    Measure(r"attack\.queries", "queries", "higher", "mean model queries per attacked example"),
    Measure(r"infer\.examples_per_second", "examples/s", "higher", "test examples predicted per second"),
)


def measure(name: str) -> Measure | None:
    """The kind of measure ``name`` is, or None for a name no cell writes."""
    return next((m for m in MEASURES if re.fullmatch(m.pattern, name)), None)


def known_names() -> str:
    """The names a hypothesis may use, for error messages."""
    return (
        ", ".join(["score", *ROUTER_METRICS])
        + ", "
        + ", ".join(m.pattern.replace("\\.", ".").replace("[A-Za-z0-9_.+-]+", "<probe>") for m in MEASURES)
    )


ALWAYS = ("ece", "brier", "infer.examples_per_second")  # every trained cell
OVERFIT = tuple(f"overfit.{kind}_{when}" for kind in ("train", "val", "gap") for when in ("best", "end"))
ATTACK = ("attack.success_rate", "attack.perturbed_words", "attack.queries")


def probe_measures(probe: str) -> tuple[str, str]:
    """The score and drop names of the probe named ``probe`` (``typo_0.1``, ``word_drop_0.1`` …)."""
    return f"robust.{probe}.score", f"robust.{probe}.drop"


def measured(probes: list[str], overfit: bool, attack: bool) -> set[str]:
    """What a trained cell with this evaluate block writes (``attack.perturbed_words`` only once an attack broke
    an example)."""
    names = {*ALWAYS, *(OVERFIT if overfit else ()), *(ATTACK if attack else ())}
    return names | {name for probe in probes for name in probe_measures(probe)}
