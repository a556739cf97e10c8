"""Beyond the clean score: robustness probes, calibration, the train–validation gap and inference speed, measured per
cell and judged by hypotheses and `bench check` like the score."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from harness.analysis.check import check, make_baseline
from harness.analysis.report import write_report
from harness.evaluation.attack import Attacked, AttackParams, attack_measures, deepwordbug, levenshtein
from harness.evaluation.calibration import calibration
from harness.evaluation.edits import NEIGHBOURS, possible, typo
from harness.evaluation.probes.typo import TypoParams
from harness.evaluation.probes.word_drop import WordDropParams
from harness.records.measures import measured
from harness.records.settings import CheckRule, Hypothesis, ReportSettings
from harness.records.store import ResultStore
from harness.run.beyond import perturbed
from harness.run.runner import RunOptions, run_cells
from harness.suite.expand import expand, load_suite
from harness.tasks import families
from harness.tasks.base import Split

from .test_report import _record

SENTENCE = {
    "tokens": ["Alice", "did", "not", "fly", "to", "New", "York", "on", "Friday"],
    "tags": ["B-PER", "O", "O", "O", "O", "B-LOC", "I-LOC", "O", "O"],
    "line": 1,
}


def _probe(params, example=SENTENCE, family="ner", copies=200):
    test = Split(None, [], [example] * copies)
    return perturbed(params, test, families.get(family))


def test_a_typo_is_one_edit_of_a_kind_that_applies():
    rng = random.Random(0)
    for word in ["Germany", "EU", "a", "1996", "aa"]:
        for _ in range(50):
            new = typo(word, rng)
            assert new != word or possible(word) == ("swap",)
            assert abs(len(new) - len(word)) <= 1 and new
    assert possible("a") == ("substitute", "insert")  # deleting the only letter would remove the word
    assert set(NEIGHBOURS["g"]) == set("tyfhvb") | {"r", "n"}


@pytest.mark.parametrize(
    ("on", "changes_entities", "changes_context"), [("entities", True, False), ("context", False, True)]
)
def test_typos_on_entities_or_on_context_leave_the_other_words_and_every_tag(on, changes_entities, changes_context):
    rewritten = _probe(TypoParams(rate=0.5, words=on))
    entity = [t != "O" for t in SENTENCE["tags"]]
    changed = np.array([[w != c for w, c in zip(r["tokens"], SENTENCE["tokens"], strict=True)] for r in rewritten])
    assert all(r["tags"] == SENTENCE["tags"] for r in rewritten)
    assert changed[:, entity].any() == changes_entities and changed[:, [not e for e in entity]].any() == changes_context
    assert 0.4 < changed.mean(axis=0)[entity if changes_entities else [not e for e in entity]].mean() < 0.6
    assert rewritten == _probe(TypoParams(rate=0.5, words=on))  # one seeded stream: the same set for every cell


def test_word_drop_removes_context_words_with_their_tags_never_an_entity_or_a_negation():
    for r in _probe(WordDropParams(rate=0.5)):
        kept = list(zip(r["tokens"], r["tags"], strict=True))
        assert [p for p in zip(SENTENCE["tokens"], SENTENCE["tags"], strict=True) if p in kept] == kept
        assert {"Alice", "New", "York", "not"} <= set(r["tokens"])
    assert min(len(r["tokens"]) for r in _probe(WordDropParams(rate=0.5))) == 4
    one_word = _probe(WordDropParams(rate=0.9), {"text": "fine", "label": "1"}, "classification")
    assert {r["text"] for r in one_word} == {"fine"}  # never the last word


def test_calibration_error_and_brier_score_by_hand():
    """Four examples, each alone in its confidence bin (width 1/15): ECE = (|1 − .9| + |0 − .8| + |1 − .6| +
    |1 − .7|) / 4 = 0.4; Brier = (0.02 + 1.28 + 0.32 + 0.18) / 4 = 0.45."""
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    assert calibration(probabilities, np.array([0, 1, 1, 1])) == pytest.approx({"ece": 40.0, "brier": 45.0})
    # two examples in one bin: |mean accuracy − mean confidence| of the bin, weighted by its share
    same_bin = np.array([[0.91, 0.09], [0.93, 0.07]])
    assert calibration(same_bin, np.array([0, 1]))["ece"] == pytest.approx(100 * abs(0.5 - 0.92))


def test_a_trained_cell_records_its_probes_calibration_gap_and_speed(toy, tmp_path):
    extra = """\
evaluate:
  overfit: true
  probes:
    - {kind: typo, rate: 1.0, words: entities}
    - {kind: typo, rate: 0.3, words: context}
    - {kind: word_drop, rate: 0.3}
"""
    path = toy(epochs=3, extra=extra)
    run_cells(expand(load_suite(path), path), tmp_path / "out", RunOptions(progress=False), log=lambda _: None)
    (record,) = ResultStore(tmp_path / "out").records()
    m, clean = record.measures, 100 * record.metrics.test["f1"]
    assert set(m) == measured(["typo_1_entities", "typo_0.3_context", "word_drop_0.3"], overfit=True, attack=False)
    for name in ("typo_1_entities", "typo_0.3_context", "word_drop_0.3"):
        assert m[f"robust.{name}.drop"] == pytest.approx(clean - m[f"robust.{name}.score"])
    # toy entities are a few fixed words: misspelling every one of them costs far more than typos around them
    assert m["robust.typo_1_entities.drop"] > 20 > m["robust.typo_0.3_context.drop"]
    assert m["overfit.val_best"] == pytest.approx(100 * record.metrics.validation["f1"])
    assert m["overfit.val_end"] == pytest.approx(100 * record.history[-1].validation["f1"])
    assert m["overfit.gap_end"] == pytest.approx(m["overfit.train_end"] - m["overfit.val_end"])
    assert 0 <= m["ece"] <= 100 and 0 <= m["brier"] <= 200 and m["infer.examples_per_second"] > 0
    assert "evaluate" in record.config  # asking for probes makes it another experiment than the plain cell


def test_a_hypothesis_and_bench_check_judge_a_measure_in_its_direction(tmp_path):
    """Routed rows calibrated worse on every seed (ECE +3 points): "a > b" on ece is reproduced, and against a
    baseline of the better-calibrated run, the rise is a regression (lower is better) while a fall is not."""
    routed = {"strategy": "random", "experts": 2}
    jitter = {1: 0.1, 2: -0.2, 3: 0.1}
    dense = [_record("full", s, 0.8, measures={"ece": 5.0 + j}) for s, j in jitter.items()]
    random_rows = [_record("full", s, 0.8, routing=routed, measures={"ece": 8.0 + j}) for s, j in jitter.items()]
    h = Hypothesis(name="worse", a={"routing": "random experts=2"}, b={"routing": "none"}, expect="a > b", metric="ece")
    brief = write_report(dense + random_rows, tmp_path / "r", ReportSettings(hypotheses=[h]))[4].read_text()
    assert "hypothesis worse: reproduced (expect ece: a > b; Δ +3.00 [3.00, 3.00]" in brief
    assert "Beyond the clean score" in (tmp_path / "r" / "leaderboard.md").read_text()
    baseline = make_baseline(dense, CheckRule())
    worse = [_record("full", s, 0.8, measures={"ece": 9.0 + j}) for s, j in jitter.items()]
    better = [_record("full", s, 0.8, measures={"ece": 1.0 + j}) for s, j in jitter.items()]
    assert [v.verdict for v in check(worse, baseline, "ece")] == ["REGRESSED"]
    assert [v.verdict for v in check(better, baseline, "ece")] == ["ok"]
    assert [v.verdict for v in check(better, baseline)] == ["ok"]  # the score did not move


def test_training_sizes_are_one_axis_of_rows_and_the_report_plots_their_learning_curves(toy, tmp_path):
    path = toy(epochs=1, extra="regimes: [{train_size: 40}, {train_size: 120}]\n")
    cells = expand(load_suite(path), path)
    assert [c.label for c in cells] == [
        "toy-ner/tiny-bert/full/none/n40/seed1",
        "toy-ner/tiny-bert/full/none/n120/seed1",
    ]
    run_cells(cells, tmp_path / "out", RunOptions(progress=False), log=lambda _: None)
    records = sorted(ResultStore(tmp_path / "out").records(), key=lambda r: r.metrics.sizes["train"])
    assert [(r.row.regime, r.metrics.sizes["train"]) for r in records] == [("n=40", 40), ("n=120", 120)]
    # two rows, each with its seeds, plotted against the size they trained on
    routed = {"strategy": "random", "experts": 2}
    fixture = [
        _record("full", seed, 0.5 + size / 1000 + seed / 100, routing=routing, regime={"train_size": size},
                sizes={"train": size})
        for seed in (1, 2, 3) for size in (100, 300) for routing in (None, routed)
    ]  # fmt: skip
    write_report(fixture, tmp_path / "report")
    assert (tmp_path / "report" / "plots" / "learning_curves.png").is_file()
    board = pd.read_csv(tmp_path / "report" / "leaderboard.csv")
    assert sorted(zip(board["routing"], board["regime"], strict=True)) == [
        ("none", "n=100"), ("none", "n=300"), ("random experts=2", "n=100"), ("random experts=2", "n=300")
    ]  # fmt: skip


def _black_box(cue: str, flaky: list[bool] | None = None):
    """A sentiment 'model' that is positive (0.9) exactly when ``cue`` is among the words; ``flaky``: a queue of
    answers to flip, as a randomised model's draws would."""

    def probabilities(texts):
        out = []
        for words in texts:
            positive = cue in words
            if flaky:
                positive ^= flaky.pop(0)
            out.append([0.1, 0.9] if positive else [0.8, 0.2])
        return np.array(out)

    return probabilities


def test_deepwordbug_edits_the_most_important_word_and_counts_its_queries():
    """ "this" and "is" are stopwords; replacing "movie" with [UNK] changes nothing, "great" everything, so "great"
    is edited first and any edit breaks the cue. Queries: 1 (clean) + 2 (one [UNK] per editable word) + 4 (one
    candidate per edit kind) + 1 (a fresh query of the result) = 8."""
    words = ["this", "movie", "is", "great"]
    result = deepwordbug(words, 1, _black_box("great"), "[UNK]", random.Random(0))
    assert result == Attacked(broken=True, edited_words=1, queries=8)


def test_an_attack_on_a_randomised_model_counts_only_what_a_fresh_draw_confirms():
    """The draw answering the last candidate query misclassifies; the fresh draw of the same text does not (the cue
    is gone, so the 'model' would say negative; a flip makes it positive again): not broken."""
    flips = [False] * 7 + [True]  # clean, 2 [UNK] probes, 4 candidates: honest; the confirming query: flipped
    result = deepwordbug(["this", "movie", "is", "great"], 1, _black_box("great", flips), "[UNK]", random.Random(0))
    assert not result.broken and result.queries == 8


def test_the_attack_stops_at_its_edit_budget_and_measures_over_correct_examples_only():
    """A model no edit can flip (the cue is a stopword): every editable word is tried once, nothing is broken; the
    wrong examples are never attacked."""
    words = [[f"word{i}" for i in range(40)] + ["the"] for _ in range(6)]
    correct = [True, False, True, False, True, True]
    measures = attack_measures(words, [1] * 6, correct, _black_box("the"), "[UNK]", AttackParams(examples=3))
    assert measures == {"attack.success_rate": 0.0, "attack.queries": 1 + 40 + 40 * 4}
    assert levenshtein("great", "graet") == 2 and levenshtein("kitten", "sitting") == 3


@pytest.mark.parametrize(
    "routing", ["random, inference: merge", "random, inference: sample", "random, inference: ensemble", "switch"]
)
def test_the_attack_and_probes_run_on_a_routed_classifier_in_every_inference_mode(write, tmp_path, routing):
    """Random routing's three inference modes, and a learned router's top-1 choice."""
    path = write(
        "suite.yaml",
        f"""
        name: attacked
        tasks: [sst2]
        backbones: [tiny-bert]
        routing: [{{experts: 2, strategy: {routing}}}]
        seeds: [1]
        train: {{epochs: 1, batch_size: 16, lr: 1.0e-3, max_length: 32, train_subset: 64, validation_subset: 32}}
        evaluate:
          probes: [{{kind: typo, rate: 0.2}}]
          attack: {{examples: 3}}
        """,
    )
    run_cells(expand(load_suite(path), path), tmp_path / "out", RunOptions(progress=False), log=lambda _: None)
    (record,) = ResultStore(tmp_path / "out").records()
    m = record.measures
    assert record.row.inference == ("top" if routing == "switch" else routing.rsplit(" ", 1)[1])
    assert 0 <= m["attack.success_rate"] <= 100 and m["attack.queries"] >= 2
    assert {"robust.typo_0.2.drop", "ece", "brier", "infer.examples_per_second"} <= set(m)
