"""Few-shot splits (LM-BFF): k per class (≥ k mentions per entity type), disjoint train and validation drawn
from the training split by the split seed, reproducible per seed, the test set untouched."""

from __future__ import annotations

from collections import Counter

from harness.models.backbones import get_backbone
from harness.suite.expand import expand, load_suite
from harness.tasks import builtin_tasks, families
from harness.tasks.data import prepare_task, read_splits

from .conftest import SHARED_DATA


def shots(task: str, k: int, seed: int):
    tokenizer = get_backbone("tiny-bert").tokenizer()
    spec = builtin_tasks.get(task)
    return prepare_task(
        spec, SHARED_DATA, tokenizer, max_length=64, seed=seed, train_subset=None, validation_subset=None, shots=k
    )


def lines(split) -> set[int]:
    return {e["line"] for e in split.examples}


def test_sst2_k_shot_is_exactly_k_per_class_disjoint_and_reproducible():
    a, again, other = shots("sst2", 16, 13), shots("sst2", 16, 13), shots("sst2", 16, 21)
    for split in (a.train, a.validation):
        assert Counter(split.gold) == {0: 16, 1: 16}
    assert not lines(a.train) & lines(a.validation)  # disjoint
    assert lines(a.train) == lines(again.train) and lines(a.validation) == lines(again.validation)
    assert lines(a.train) != lines(other.train)
    full_test = read_splits(builtin_tasks.get("sst2"), SHARED_DATA)[0]["test"]
    assert len(a.test.gold) == len(full_test) == 872  # the GLUE dev set, whole
    assert a.shots == 16


def test_conll_k_shot_has_at_least_k_mentions_per_type_and_no_empty_sentences():
    family = families.get("ner")
    data = shots("conll2003", 5, 1)
    for split in (data.train, data.validation):
        mentions = Counter()
        for sentence in split.examples:
            found = family.strata(sentence)
            assert found, "a sentence without entities was drawn"
            mentions.update(found)
        assert set(mentions) == {"LOC", "MISC", "ORG", "PER"} and min(mentions.values()) >= 5
        # greedy: the last sentence drawn was needed, so no type is far past k unless sentences carry many
        assert len(split.examples) <= 4 * 5
    assert not lines(data.train) & lines(data.validation)
    assert len(data.test.gold) == 3453


def test_few_shot_regime_expands_one_cell_per_split_seed(write):
    path = write(
        "suite.yaml",
        """
        name: fs
        tasks: [sst2]
        backbones: [tiny-bert]
        seeds: [1, 2]
        train: {epochs: 2, train_subset: 100}
        grids:
          - regimes: [{shots: 8, train: {epochs: 9}}]
          - regimes: [{shots: 4, split_seeds: [13, 21, 42]}]
            seeds: [1]
          - methods: [majority, zero_shot]
        """,
    )
    cells = expand(load_suite(path), path)
    few = [(c.regime.shots, c.regime.split_seed, c.seed, c.train.epochs, c.train.train_subset) for c in cells[:5]]
    assert few == [
        (8, 1, 1, 9, None),
        (8, 2, 2, 9, None),
        (4, 13, 1, 2, None),
        (4, 21, 1, 2, None),
        (4, 42, 1, 2, None),
    ]
    # methods without randomness run once, not once per seed
    assert [(c.method.name, c.seed) for c in cells[5:]] == [("majority", 1), ("zero_shot", 1)]
    assert len({c.config_hash for c in cells}) == len(cells)
