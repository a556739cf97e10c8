"""DeepWordBug (Gao et al. 2018, "Black-box Generation of Adversarial Text Sequences to Evade Deep Learning
Classifiers"), the black-box character-level attack, as TextAttack's ``DeepWordBugGao2018`` recipe runs it (Morris et
al. 2020): rank words by how much replacing each with the unknown token lowers the true class's probability (the
paper's Replace-1 score), then, most important first, try one edit of each kind (adjacent swap, substitution,
deletion, insertion; ``edits``) on the word and keep the one that lowers that probability most, until the
prediction flips. Constraints: stopwords are not edited, no word twice, a Levenshtein distance of at most 30 from
the original text.

It needs only the model's class probabilities for a text (black box), so it runs on any classification cell and
inference mode. With ``sample`` inference each query sees a different random draw of experts: the attack sees a
randomised model (a randomised defence, Athalye et al. 2018), so an example counts as broken only when a fresh
query also misclassifies the text the attack ended with; for deterministic modes that query changes nothing."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from harness.core.config import Strict
from harness.evaluation.edits import edit, possible

# English function words that are not edited: NLTK's English stopword list, copied so that nothing is downloaded
# (TextAttack's recipe uses a longer list of its own)
_STOPWORDS = (
    "a about above after again against ain all am an and any are aren aren't as at be because been before being "
    "below between both but by can couldn couldn't d did didn didn't do does doesn doesn't doing don don't down "
    "during each few for from further had hadn hadn't has hasn hasn't have haven haven't having he her here hers "
    "herself him himself his how i if in into is isn isn't it it's its itself just ll m ma me mightn mightn't more "
    "most mustn mustn't my myself needn needn't no nor not now o of off on once only or other our ours ourselves "
    "out over own re s same shan shan't she she's should should've shouldn shouldn't so some such t than that "
    "that'll the their theirs them themselves then there these they this those through to too under until up ve "
    "very was wasn wasn't we were weren weren't what when where which while who whom why will with won won't "
    "wouldn wouldn't y you you'd you'll you're you've your yours yourself yourselves"
)
STOPWORDS = frozenset(_STOPWORDS.split())
MAX_EDIT_DISTANCE = 30  # TextAttack's DeepWordBugGao2018 constraint, LevenshteinEditDistance(30)

Probabilities = Callable[[list[list[str]]], np.ndarray]  # word lists -> [texts, classes]
BATCH = 128  # texts per model call: the attacks of all examples advance together, a round at a time


class AttackParams(Strict):
    """Which test examples to attack: the first ``examples`` of the test set, in an order shuffled by ``seed``, that
    the cell's model gets right (the same order for every cell)."""

    recipe: Annotated[str, Field(pattern="^deepwordbug$")] = "deepwordbug"
    examples: Annotated[int, Field(gt=0)] = 100
    seed: int = 1


@dataclass(frozen=True)
class Attacked:
    broken: bool  # the prediction flipped, on the attack's query and on a fresh one
    edited_words: int
    queries: int


def levenshtein(a: str, b: str) -> int:
    """Insertions, deletions and substitutions turning ``a`` into ``b`` (an adjacent swap costs 2, as in the
    ``editdistance`` package TextAttack's constraint uses)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = row
    return previous[-1]


Queries = Generator[list[list[str]], np.ndarray, Attacked]  # yields texts to score, is sent their probabilities


def _attack(words: list[str], label: int, unk: str, rng: random.Random) -> Queries:
    """DeepWordBug on one correctly classified example (``words``, gold ``label``), as a generator: it yields each
    batch of texts it wants scored and is sent their class probabilities, so that many attacks share batches."""
    queries = 1
    current, p_true = list(words), float((yield [words])[0, label])
    editable = [i for i, w in enumerate(words) if w.lower() not in STOPWORDS]
    if editable:
        probes = yield [[unk if j == i else w for j, w in enumerate(words)] for i in editable]
        queries += len(editable)
        editable = [editable[k] for k in np.argsort(-(p_true - probes[:, label]), kind="stable")]
    distance, edited = 0, 0
    for i in editable:
        candidates = [edit(current[i], kind, rng) for kind in possible(current[i])]
        texts = [[*current[:i], c, *current[i + 1 :]] for c in candidates]
        probs = yield texts
        queries += len(texts)
        best = int(np.argmin(probs[:, label]))
        if probs[best, label] >= p_true:
            continue
        cost = levenshtein(current[i], candidates[best])
        if distance + cost > MAX_EDIT_DISTANCE:
            break
        current, p_true, distance, edited = texts[best], float(probs[best, label]), distance + cost, edited + 1
        if int(np.argmax(probs[best])) != label:
            fresh = yield [current]  # a fresh draw: a lucky sample of a randomised model is no success
            return Attacked(int(np.argmax(fresh[0])) != label, edited, queries + 1)
    return Attacked(False, edited, queries)


def _drive(attacks: list[Queries], probabilities: Probabilities, batch: int = BATCH) -> list[Attacked]:
    """Run the attacks side by side: every round, the texts all unfinished attacks asked for, scored in batches
    of at most ``batch``, each attack sent its own rows."""
    results: dict[int, Attacked] = {}
    asked = {}
    for k, attack in enumerate(attacks):
        asked[k] = next(attack)
    while asked:
        texts = [text for k in asked for text in asked[k]]
        scored = np.concatenate([probabilities(texts[i : i + batch]) for i in range(0, len(texts), batch)])
        start, replies = 0, {}
        for k, wanted in asked.items():
            replies[k], start = scored[start : start + len(wanted)], start + len(wanted)
        asked = {}
        for k, reply in replies.items():
            try:
                asked[k] = attacks[k].send(reply)
            except StopIteration as done:
                results[k] = done.value
    return [results[k] for k in range(len(attacks))]


def deepwordbug(words: list[str], label: int, probabilities: Probabilities, unk: str, rng: random.Random) -> Attacked:
    """Attack one correctly classified example (``words``, gold ``label``)."""
    return _drive([_attack(words, label, unk, rng)], probabilities)[0]


def attack_measures(
    examples: list[list[str]],
    labels: list[int],
    correct: list[bool],
    probabilities: Probabilities,
    unk: str,
    params: AttackParams,
) -> dict[str, float]:
    """``attack.success_rate`` (points), ``attack.perturbed_words`` (mean over broken examples) and
    ``attack.queries`` (mean over attacked examples) over the first ``params.examples`` correct examples."""
    order = list(range(len(examples)))
    random.Random(params.seed).shuffle(order)
    chosen = [i for i in order if correct[i]][: params.examples]
    # each example its own edit stream, so that a result does not depend on which others share its batches
    attacks = [_attack(examples[i], labels[i], unk, random.Random(f"{params.seed}/{i}")) for i in chosen]
    results = _drive(attacks, probabilities)
    broken = [r for r in results if r.broken]
    measures = {
        "attack.success_rate": 100 * len(broken) / max(len(results), 1),
        "attack.queries": float(np.mean([r.queries for r in results])) if results else 0.0,
    }
    if broken:  # words per success: undefined without one
        measures["attack.perturbed_words"] = float(np.mean([r.edited_words for r in broken]))
    return measures
