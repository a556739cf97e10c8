"""Data files: malformed input fails with file:line and what was expected; splits are carved by seed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.core.errors import BenchError
from harness.models.backbones import get_backbone
from harness.suite.expand import expand, load_suite
from harness.tasks import TaskFiles, TaskSpec, builtin_tasks
from harness.tasks.classification import read_table
from harness.tasks.data import disjoint_carve, prepare_task, read_splits
from harness.tasks.ner import read_conll

from .conftest import SHARED_DATA, bench, toy_ner_lines

NER = TaskSpec(name="toy", type="ner", format="conll", files=TaskFiles(train="train.conll", test="test.conll"))
CLS = TaskSpec(name="toy", type="classification", format="tsv", files=TaskFiles(train="train.tsv", test="test.tsv"))
GOOD_CONLL = "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n"
GOOD_TSV = "sentence\tlabel\ngood film\t1\nbad film\t0\n"


def _files(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name.replace("_", ".")).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("train", "test", "expected"),
    [
        (
            "EU B-ORG\nrejects\n",
            GOOD_CONLL,
            r"train.conll:2: expected 'TOKEN TAG' separated by whitespace, got 'rejects'",
        ),
        (
            "EU B-ORG\nrejects X-MISC\n",
            GOOD_CONLL,
            r"train.conll:2: unknown tag 'X-MISC'; expected O, B-TYPE or I-TYPE",
        ),
        ("\n\n", GOOD_CONLL, r"train.conll: no sentences; expected lines of 'TOKEN TAG'"),
        (
            GOOD_CONLL,
            "EU B-ORG\n\nParis B-LOC\n",
            r"test.conll:3: tag 'B-LOC' does not occur in the training data",
        ),
    ],
    ids=["missing-tag", "unknown-tag", "empty-file", "tag-unseen-in-train"],
)
def test_malformed_conll(tmp_path, train, test, expected):
    data_dir = _files(tmp_path, train_conll=train, test_conll=test)
    with pytest.raises(BenchError, match=expected):
        prepare_task(NER, data_dir, None, max_length=32, seed=1, train_subset=None, validation_subset=None)


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ("", r"train.tsv: empty file; expected a header row with 'sentence' and 'label'"),
        ("text\tlabel\nfine\t1\n", r"train.tsv:1: missing column 'sentence' \(found: text, label\)"),
        ("sentence\tlabel\nfine\t1\nbroken row\n", r"train.tsv:3: expected 2 TSV fields, got 1"),
        ("sentence\tlabel\nfine\t\n", r"train.tsv:2: empty label in column 'label'"),
        ("sentence\tlabel\n", r"train.tsv: no data rows after the header"),
        ("sentence\tlabel\ngood\t1\nbad\t0\n", None),
    ],
    ids=["empty-file", "missing-column", "short-row", "empty-label", "header-only", "good"],
)
def test_malformed_tsv(tmp_path, train, expected):
    data_dir = _files(tmp_path, train_tsv=train, test_tsv=GOOD_TSV.replace("\t1\n", "\t2\n"))
    expected = expected or r"test.tsv:2: label '2' does not occur in the training data \(known: 0, 1\)"
    with pytest.raises(BenchError, match=expected):
        read_splits_checked(data_dir)


def read_splits_checked(data_dir: Path) -> None:
    prepare_task(CLS, data_dir, None, max_length=32, seed=1, train_subset=None, validation_subset=None)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(BenchError, match=r"task 'toy': data file not found: .*train.conll"):
        read_splits(NER, tmp_path)


@pytest.mark.parametrize(("name", "header", "line"), [("train.conll", b"", 3), ("train.tsv", b"sentence\tlabel\n", 4)])
def test_a_file_that_is_not_utf8_names_its_line(tmp_path, name, header, line):
    """A Latin-1 'é' (byte 0xE9) after two good lines: the error names file, line and column, not only the byte."""
    good = b"EU B-ORG\n" if name.endswith("conll") else b"fine\t1\n"
    (tmp_path / name).write_bytes(header + good * 2 + b"caf\xe9 " + good)
    read = read_conll if name.endswith("conll") else lambda path: read_table(path, "tsv", "sentence", "label")
    with pytest.raises(BenchError, match=rf"{name}:{line}: not UTF-8 text \(invalid continuation byte at column 4, "):
        read(tmp_path / name)


LOCAL_SUITE = """
name: local
tasks:
  - name: toy-ner
    type: ner
    format: conll
    files: {train: data/train.conll, validation: data/validation.conll, test: data/test.conll}
  - conll2003
backbones: [tiny-bert]
seeds: [1]
"""


def test_relative_paths_are_read_beside_the_suite_first_then_under_bench_data_dir(tmp_path, monkeypatch):
    """`make run SUITE=experiments/suite.yaml` exports BENCH_DATA_DIR: the suite's own data/ beside it is still
    found, while a built-in task (whose files are not beside the suite) is read under BENCH_DATA_DIR."""
    suite = tmp_path / "experiments" / "suite.yaml"
    (suite.parent / "data").mkdir(parents=True)
    suite.write_text(LOCAL_SUITE)
    for split, seed in (("train", 0), ("validation", 1), ("test", 2)):
        (suite.parent / "data" / f"{split}.conll").write_text(toy_ner_lines(40, seed))
    monkeypatch.setenv("BENCH_DATA_DIR", str(SHARED_DATA))
    cells = {cell.task.name: cell.data_dir for cell in expand(load_suite(suite), suite)}
    assert cells == {"toy-ner": str(suite.parent), "conll2003": str(SHARED_DATA.resolve())}
    result = bench("validate", str(suite), env={"BENCH_DATA_DIR": str(SHARED_DATA)})  # reads every file it names
    assert result.returncode == 0, result.stderr
    (suite.parent / "data" / "test.conll").unlink()  # not all beside the suite: read under BENCH_DATA_DIR, missing
    result = bench("validate", str(suite), env={"BENCH_DATA_DIR": str(tmp_path / "elsewhere")})
    assert result.returncode != 0
    assert f"data file not found: {tmp_path / 'elsewhere' / 'data'}" in result.stderr


def test_builtin_without_local_files_fails_fast_offline(tmp_path):
    """No local files and no network: a clear message that says how to point at local files."""
    with pytest.raises(BenchError, match=r"could not be loaded .*set BENCH_DATA_DIR"):
        read_splits(builtin_tasks.get("sst2"), tmp_path)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/datasets")
def test_sst2_validation_is_carved_from_train_by_seed():
    """SST-2 reports on the GLUE dev set; validation comes out of train, disjoint, and follows the seed."""
    tokenizer = get_backbone("tiny-bert").tokenizer()
    spec = builtin_tasks.get("sst2")

    def carve(seed: int):
        data = prepare_task(
            spec, SHARED_DATA, tokenizer, max_length=64, seed=seed, train_subset=500, validation_subset=None
        )
        texts = [
            {tokenizer.decode(ids) for ids in split.inputs["input_ids"]} for split in (data.train, data.validation)
        ]
        return data, *texts

    data, train, validation = carve(1)
    assert len(data.validation.gold) == 1000 and len(data.train.gold) == 500 and len(data.test.gold) == 872
    assert 5000 < data.carve_removed < 20000  # the sub-phrases of the 1,000 validation sentences
    assert data.test_source.endswith("sst2/validation.tsv")
    assert not train & validation - {""}
    _, train_again, validation_again = carve(1)
    assert (train_again, validation_again) == (train, validation)
    _, train_other, validation_other = carve(2)
    assert validation_other != validation and train_other != train


def test_the_tokenisation_cache_follows_the_label_column(tmp_path):
    """The same file read through another label column must not reuse the first column's cached labels."""
    rows = "sentence\tlabel\tflipped\n" + "".join(f"film {i}\t{i % 2}\t{1 - i % 2}\n" for i in range(6))
    data_dir = _files(tmp_path, train_tsv=rows, test_tsv=rows)
    tokenizer = get_backbone("tiny-bert").tokenizer()
    for column, first in (("label", 0), ("flipped", 1)):
        spec = CLS.model_copy(update={"label_column": column, "validation_from_train": 2})
        data = prepare_task(spec, data_dir, tokenizer, max_length=16, seed=1, train_subset=None, validation_subset=None)
        assert data.test.inputs["labels"] == data.test.gold == [first, 1 - first] * 3


def test_tsv_with_standard_quoting_reads_as_written_and_glue_quotes_stay_text(tmp_path):
    import pandas as pd

    texts = ['she said "wow"', "a\ttab inside", "plain film", '"quoted" start']
    pd.DataFrame({"sentence": texts, "label": [1, 0, 1, 0]}).to_csv(tmp_path / "pandas.tsv", sep="\t", index=False)
    rows = read_table(tmp_path / "pandas.tsv", "tsv", "sentence", "label")
    assert [r["text"] for r in rows] == texts and [r["label"] for r in rows] == ["1", "0", "1", "0"]

    # GLUE writes no quoting: a quote character at the start of, or inside, a field is text
    glue = 'sentence\tlabel\n" the film \'s twist\t1\nan " odd " one\t0\n"both ends"\t1\n'
    (tmp_path / "glue.tsv").write_text(glue)
    rows = read_table(tmp_path / "glue.tsv", "tsv", "sentence", "label")
    assert [r["text"] for r in rows] == ["\" the film 's twist", 'an " odd " one', '"both ends"']
    assert [r["line"] for r in rows] == [2, 3, 4]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/datasets")
def test_the_real_sst2_files_read_exactly_as_glue_wrote_them():
    for split, count in (("train", 67349), ("validation", 872)):
        path = SHARED_DATA / "sst2" / f"{split}.tsv"
        rows = read_table(path, "tsv", "sentence", "label")
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        assert len(rows) == count and [f"{r['text']}\t{r['label']}" for r in rows] == lines


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/datasets")
def test_the_sst2_carve_leaves_no_phrase_containment_either_way():
    """GLUE's SST-2 train holds every phrase of each sentence's parse tree: a random carve put 898 of 1,000
    validation phrases inside training phrases. Now no training phrase contains, or sits in, a validation one."""
    raw, _, _ = read_splits(builtin_tasks.get("sst2"), SHARED_DATA)
    words = [tuple(row["text"].split()) for row in raw["train"]]
    order = list(range(len(words)))
    random.Random(1).shuffle(order)
    validation, training, removed = disjoint_carve(words, order, 1000)
    assert len(validation) == 1000 and len(training) + removed + 1000 == len(words)
    chosen = {words[i] for i in validation}
    padded = [f" {' '.join(words[i])} " for i in validation]
    for i in training:
        phrase = words[i]
        runs = {phrase[a:b] for a in range(len(phrase)) for b in range(a + 1, len(phrase) + 1)}
        assert not runs & chosen, phrase  # contains a validation phrase
    sample = [words[i] for i in training[:: max(1, len(training) // 3000)]]  # inside one: a direct text search
    assert not [p for p in sample if any(f" {' '.join(p)} " in v for v in padded)]
