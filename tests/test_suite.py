"""Suites: each mistake a user can make gets file:line, the field, and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.errors import BenchError
from harness.run.suite_run import matching
from harness.suite.cell import Cell
from harness.suite.expand import check_data, expand, load_suite
from harness.suite.specs import TrainConfig
from harness.tasks.base import TaskSpec

from .conftest import REPO, SHARED_DATA, bench

GOOD = """
name: demo
tasks: [conll2003]
backbones: [tiny-bert]
methods: [full]
routing: [{strategy: none}]
regimes: [full]
seeds: [1, 2]
train: {epochs: 2, lr: 1.0e-3}
profiles:
  default: {train_subset: 100}
  full: {}
"""

# (what the user wrote in place of a GOOD line or as an extra line, the line it lands on, expected fragments)
MISTAKES = [
    ("seeds: [1, 2]\nepochs: 3", 8, ["epochs", "unknown field 'epochs'", "allowed: name"]),
    (
        "train: {epochs: 2, lrr: 1.0e-3}",
        8,
        ["train.lrr", "unknown field 'lrr'", "allowed: epochs, max_steps, batch_size"],
    ),
    ("train: {epochs: two, lr: 1.0e-3}", 8, ["train.epochs", "valid integer", "'two'"]),
    ("train: {epochs: 2, lr: -1}", 8, ["train.lr", "greater than 0"]),
    ("train: {epochs: 2, lr: 1.0e-3, warmup_ratio: 1.5}", 8, ["train.warmup_ratio", "less than 1"]),
    ("methods: [ful]", 4, ["methods[0]", "unknown method 'ful'", "did you mean 'full'", "allowed: full"]),
    ("routing: [{strategy: randm}]", 5, ["routing[0]", "unknown routing strategy 'randm'", "allowed: none"]),
    ("routing: [{strategy: topk, experts: 2, k: 3}]", 5, ["routing[0]", "k=3 is more than experts=2"]),
    ("tasks: [conll2030]", 2, ["tasks[0]", "unknown task 'conll2030'", "did you mean 'conll2003'"]),
    ("backbones: [minilm-l7]", 3, ["backbones[0]", "did you mean 'minilm-l6'"]),
    ("seeds: []", 7, ["seeds", "at least 1 item"]),
    ("seeds: [1, 1]", 7, ["seeds", "duplicate entry 1"]),
    ("regimes: [half]", 6, ["regimes[0]", "Input should be 'full'", "'half'"]),
    (
        "tasks: [{name: mine, type: nerr, format: conll}]",
        2,
        ["tasks[0].type", "unknown task type 'nerr'; did you mean 'ner'? (allowed: ner, classification)"],
    ),
    (
        "tasks: [{name: mine, type: ner, format: xml}]",
        2,
        ["tasks[0].format", "ner data is read from 'conll' files (got 'xml')"],
    ),
    ("tasks: [{name: mine, format: conll}]", 2, ["tasks[0].type", "Field required"]),
    ("  default: {train_subset: 100, epoch: 1}", 10, ["profiles.default.epoch", "unknown field 'epoch'"]),
    ("seeds: [1, 2]\nseeds: [3]", 8, ["duplicate key 'seeds'", "first given on line 7"]),
    ("regimes: [{shots: 0}]", 6, ["regimes[0].shots", "greater than 0"]),
    ("regimes: [{shots: 4, splits: [1]}]", 6, ["regimes[0].splits", "unknown field", "allowed: shots, split_seeds"]),
    (
        "seeds: [1, 2]\ngrids: [{methods: [full]}, {methods: [lora], profiles: [ful]}]",
        8,
        ["grids[1].profiles[0]", "unknown profile 'ful' (profiles: default, full)"],
    ),
    # combinations that make no sense are rejected at the method's entry, naming the combination
    ("methods: [full, prompt_tuning]", 4, ["methods[1]", "supports classification tasks, not ner"]),
    (
        "seeds: [1, 2]\ngrids: [{methods: [zero_shot], routing: [random]}]",
        8,
        ["grids[0].methods[0]", "no parallel paths to route", "routing random"],
    ),
    (
        "routing: [{strategy: hash, placement: ffn}]\ngrids: [{methods: [full, {name: lora, r: 4}]}]",
        6,
        ["grids[0].methods[1]", "placement 'ffn' does not fit method 'lora', whose paths are 'lora'"],
    ),
    (
        "seeds: [1, 2]\ngrids: [{regimes: [full, {shots: 8}], methods: [majority]}]",
        8,
        ["grids[0].methods[0]", "no few-shot regime", "regime 8-shot"],
    ),
    (
        "seeds: [1, 2]\ngrids: [{methods: [icl], routing: [hash]}]",
        8,
        [
            "grids[0].methods[0]",
            "method 'icl' has no parallel paths",
        ],
    ),
    ("seeds: [1, 2]\ngrids: [{tasks: [mytask]}]", 8, ["grids[0].tasks[0]", "unknown task 'mytask'"]),
    # the evaluate block: unknown probes, their fields, and probes a task cannot run; a hypothesis on a measure
    # that no cell measures
    (
        "seeds: [1, 2]\nreport: {hypotheses: [{name: h, a: {method: full}, b: {method: full}, expect: a < b,"
        " metric: robust.typo_0.1.drop}]}",
        8,
        ["report.hypotheses[0].metric", "no cell of the suite measures 'robust.typo_0.1.drop'"],
    ),
    (
        "seeds: [1, 2]\nreport: {hypotheses: [{name: h, a: {method: full}, b: {method: full}, metric: eec}]}",
        8,
        ["report.hypotheses[0].metric", "unknown metric 'eec'"],
    ),
    (
        "seeds: [1, 2]\nevaluate: {probes: [tpyo]}",
        8,
        ["evaluate.probes[0]", "unknown probe 'tpyo'; did you mean 'typo'"],
    ),
    (
        "seeds: [1, 2]\nevaluate: {probes: [{kind: typo, rate: 2}]}",
        8,
        ["evaluate.probes[0].rate", "less than or equal to 1"],
    ),
    (
        "seeds: [1, 2]\ngrids: [{tasks: [sst2], evaluate: {probes: [{kind: typo, words: entities}]}}]",
        8,
        ["grids[0].evaluate.probes[0].words", "task sst2 (classification) has no entity words"],
    ),
    ("seeds: [1, 2", 8, ["invalid YAML"]),
]


def _apply(mistake: str) -> str:
    lines = GOOD.strip("\n").splitlines()
    key = mistake.split(":")[0]
    for i, line in enumerate(lines):
        if line.split(":")[0] == key:
            lines[i] = mistake
            break
    else:
        raise AssertionError(f"no line for {key!r}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("mistake", "line", "fragments"), MISTAKES, ids=[m[0][:40] for m in MISTAKES])
def test_bad_suite_names_file_line_field_and_expectation(write, mistake, line, fragments):
    path = write("suite.yaml", _apply(mistake))
    with pytest.raises(BenchError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}:"), message
    for fragment in fragments:
        assert fragment in message, message


def test_several_mistakes_are_all_reported(write):
    path = write("suite.yaml", GOOD.replace("methods: [full]", "methods: [ful]").replace("seeds: [1, 2]", "seeds: []"))
    with pytest.raises(BenchError) as caught:
        load_suite(path)
    assert len(str(caught.value).splitlines()) == 2


def test_empty_and_non_mapping_files(write):
    with pytest.raises(BenchError, match=r":1: the file is empty"):
        load_suite(write("empty.yaml", ""))
    with pytest.raises(BenchError, match=r":1: expected a mapping of suite fields, got list"):
        load_suite(write("list.yaml", "- a\n- b\n"))


def test_cli_prints_one_line_per_error_and_exits_2(write):
    path = write("suite.yaml", _apply("methods: [ful]"))
    result = bench("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}:4: methods[0]: unknown method 'ful'; did you mean 'full'? "
        "(allowed: full, lora, adapter, prompt_tuning, icl, zero_shot, majority)"
    ]
    assert "Traceback" not in result.stderr


def test_cli_bad_flag_is_one_line_exit_2():
    result = bench("run", "suites/smoke.yaml", "--frobnicate")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: No such option: --frobnicate (Possible options: --force)"]


def test_expansion_profiles_and_hash(write):
    path = write("suite.yaml", GOOD)
    suite = load_suite(path)
    cells = expand(suite, path)
    assert [c.seed for c in cells] == [1, 2]
    assert cells[0].train.train_subset == 100 and cells[0].train.epochs == 2  # `default` laid over `train`
    full = expand(suite, path, "full")
    assert full[0].train.train_subset is None
    assert full[0].config_hash != cells[0].config_hash
    with pytest.raises(BenchError, match=r"no profile 'paper' \(profiles: default, full\)"):
        expand(suite, path, "paper")


def test_config_hash_covers_results_not_paths_or_names(write, monkeypatch):
    first = write("a/suite.yaml", GOOD)
    second = write("b/suite.yaml", GOOD.replace("name: demo", "name: other"))
    monkeypatch.delenv("BENCH_DATA_DIR")
    a, b = expand(load_suite(first), first)[0], expand(load_suite(second), second)[0]
    assert a.data_dir != b.data_dir and a.suite != b.suite
    assert a.config_hash == b.config_hash  # where the data sits and what the suite is called do not matter
    changed = write("c/suite.yaml", GOOD.replace("lr: 1.0e-3", "lr: 2.0e-3"))
    assert expand(load_suite(changed), changed)[0].config_hash != a.config_hash


@pytest.mark.parametrize(
    "suite", sorted(str(p.relative_to(REPO / "suites")) for p in (REPO / "suites").rglob("*.yaml"))
)
def test_every_shipped_suite_validates(suite):
    """Its schema and, when the real data is present, every data file and sample its cells will read."""
    path = Path(REPO / "suites" / suite)
    cells = expand(load_suite(path), path)
    assert cells, suite
    if SHARED_DATA.is_dir():
        assert len(check_data(cells)) == len({cell.task.name for cell in cells})


def test_the_nightly_suite_expands_to_the_rows_of_the_committed_baseline():
    """A row's identity is fixed at expansion (schema 2); the committed baseline must still find every row."""
    path = REPO / "suites" / "nightly.yaml"
    rows = {cell.row().key: cell.row().label for cell in expand(load_suite(path), path)}
    baseline = json.loads((REPO / "results" / "baselines" / "nightly.json").read_text())
    assert {key: row["label"] for key, row in baseline["rows"].items()} == rows


def test_a_method_with_its_own_lr_trains_with_the_lr_a_search_chose():
    """One place reconciles the two learning rates: searching method.lr (or lr) of LoRA moves the training lr."""
    task = TaskSpec(name="t", type="ner", format="conll")
    cell = Cell(
        suite="s", task=task, backbone="b", method={"name": "lora"}, routing={"strategy": "none"}, regime="full",
        seed=1, train=TrainConfig(lr=1e-5), data_dir="",
    )  # fmt: skip
    assert cell.train.lr == cell.method.lr == 5e-4  # the method's default wins over the suite's
    for key in ("method.lr", "lr"):
        searched = cell.with_params({key: 3e-3})
        assert searched.train.lr == searched.method.lr == 3e-3, key
    assert cell.with_params({"epochs": 2}).train.lr == 5e-4


DATA_SUITE = """
name: toydata
data_dir: data
tasks:
  - {name: toy, type: classification, format: tsv, files: {train: train.tsv, test: test.tsv}, validation_from_train: 4}
backbones: [tiny-bert]
methods: [full]
seeds: [1, 2]
"""


def _toy_data(write, train_rows: int = 24, test: str = "sentence\tlabel\nfine film\t1\nweak plot\t0\n") -> None:
    lines = [f"{'good' if i % 2 else 'bad'} film number {i}\t{i % 2}" for i in range(train_rows)]
    write("data/train.tsv", "sentence\tlabel\n" + "\n".join(lines) + "\n")
    write("data/test.tsv", test)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"test": "sentence\tlabel\nfine film\t2\n"}, r"test.tsv:2: label '2' does not occur in the training data"),
        ({"test": "text\tlabel\nfine film\t1\n"}, r"test.tsv:1: missing column 'sentence' \(found: text, label\)"),
        ({"train_rows": 4}, r"task 'toy': validation_from_train=4 leaves no training data \(4 training examples\)"),
        ({"regime": "16"}, r"task 'toy', split seed 1: 16-shot sampling: only \d+ examples of '0' left to draw"),
    ],
    ids=["unseen-label", "missing-column", "carve-too-large", "too-few-shots"],
)
def test_validate_opens_the_data_a_run_will_read(write, change, expected):
    """What used to fail a minute into a run fails at `bench validate`, with the file, line or field."""
    _toy_data(write, change.get("train_rows", 24), change.get("test", "sentence\tlabel\nfine film\t1\n"))
    text = DATA_SUITE + (f"regimes: [{{shots: {change['regime']}}}]\n" if "regime" in change else "")
    path = write("suite.yaml", text)
    with pytest.raises(BenchError, match=expected):
        check_data(expand(load_suite(path), path))


def test_validate_prints_what_it_read(write):
    _toy_data(write)
    path = write("suite.yaml", DATA_SUITE + "regimes: [full, {shots: 2}]\n")
    result = bench("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "toy: train 24, test 2 examples, 2 labels; validation 4 carved from train (0 training examples removed)",
        f"{path}: ok, 4 cells",
    ]
    write("data/test.tsv", "sentence\tlabel\nfine film\t7\n")
    result = bench("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path.parent / 'data' / 'test.tsv'}:2: label '7' does not occur in the training data (known: 0, 1)"
    ]


def test_a_grid_limited_to_a_profile_adds_its_cells_under_that_profile_only(write):
    path = write("suite.yaml", GOOD + "grids: [{methods: [full]}, {methods: [lora], profiles: [full]}]\n")
    suite = load_suite(path)
    assert {c.method.name for c in expand(suite, path)} == {"full"}  # no --profile: `default`
    assert {c.method.name for c in expand(suite, path, "full")} == {"full", "lora"}


def test_only_keeps_the_cells_whose_label_matches_and_a_glob_matching_nothing_is_an_error(write):
    path = write("suite.yaml", GOOD.replace("methods: [full]", "methods: [full, lora]"))
    cells = expand(load_suite(path), path)
    assert [c.label for c in matching(cells, ["*/lora/*/seed2", "*/full/none/full/seed1"])] == [
        "conll2003/tiny-bert/full/none/full/seed1",
        "conll2003/tiny-bert/lora/none/full/seed2",
    ]
    assert matching(cells, None) == cells
    sentiment = REPO / "suites" / "sentiment.yaml"  # a searched row and its hand-set twin: --only tells them apart
    searched = expand(load_suite(sentiment), sentiment, "full")
    assert [c.search is None for c in matching(searched, ["*/lora/none/full/seed1"])] == [True]
    assert [c.search is None for c in matching(searched, ["*/lora+search/none/full/seed1"])] == [False]
    with pytest.raises(BenchError) as caught:
        matching(cells, ["*/lora/*", "*/lorra/*"])
    assert str(caught.value) == (
        "--only '*/lorra/*': matches none of the 4 cells (labels look like conll2003/tiny-bert/full/none/full/seed1)"
    )
