"""Kill anywhere, resume always: a run stopped at any point (SIGKILL, Ctrl-C) leaves a folder the next run
finishes, with the numbers of a run that was never interrupted; stores fail as one line naming them."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.records.store import ResultStore
from harness.run.stores import make_whole, open_tracking_store

from .conftest import REPO, bench, free_port, toy_ner_lines

SUITE = """
name: killed
tasks:
  - name: toy-ner
    type: ner
    format: conll
    files: {train: train.conll, validation: validation.conll, test: test.conll}
backbones: [tiny-bert]
seeds: [1, 2]
data_dir: .
train: {epochs: 2, batch_size: 16, lr: 3.0e-3, max_length: 32, warmup_ratio: 0.0}
grids:
  - methods: [full]
  - methods: [majority]
search:
  trials: 3
  heartbeat_seconds: 1
  space:
    lr: {type: log_float, low: 3.0e-4, high: 1.0e-2}
"""

# Each run of the chain stops at the next point (name[:n-th time[:signal]]), each a little further on; the last
# runs to the end. Between them they stop inside the creation of both stores, between a trial's creation and its
# start (no owner), between a trial's last epoch and the study recording it (SIGKILL, then Ctrl-C on its retry),
# between a cell's end and its tracking run, between its run and its record, mid-record, mid-report.
CHAIN = [
    "create-optuna",
    "create-mlflow",
    "trial-made:2",
    "trial-end",
    "trial-end:1:SIGINT",
    "cell-done",
    "tracked",
    "weights",
    "record",
    "report",
]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("killed")
    for split, n, seed in (("train", 300, 0), ("validation", 60, 1), ("test", 80, 2)):
        (root / f"{split}.conll").write_text(toy_ner_lines(n, seed))
    path = root / "suite.yaml"
    path.write_text(SUITE)
    return path


def _run(suite: Path, out: Path, stop: str | None = None) -> subprocess.CompletedProcess:
    args = ("run", str(suite), "--out", str(out / "results"), "--report", str(out / "report"), "--quiet")
    env = {"BENCH_STOP_AT": stop} if stop else {}
    return bench(*args, "--save-weights", "--tracking-uri", f"sqlite:///{out / 'results' / 'mlflow.db'}", env=env)


@pytest.fixture(scope="module")
def uninterrupted(suite: Path) -> Path:
    out = suite.parent / "uninterrupted"
    result = _run(suite, out)
    assert result.returncode == 0, result.stderr
    return out


def test_a_run_stopped_at_every_named_point_resumes_to_the_same_numbers(suite, uninterrupted):
    out = suite.parent / "chain"
    for stop in CHAIN:
        result = _run(suite, out, stop)
        expected = 130 if stop.endswith("SIGINT") else -signal.SIGKILL
        assert result.returncode == expected, f"{stop}: exit {result.returncode}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
    result = _run(suite, out)
    assert result.returncode == 0, result.stderr
    _assert_same_as_uninterrupted(out, uninterrupted)

    trials = _trials(out)
    # the owner-less trial, the one killed after its last epoch and its Ctrl-C'd retry all failed; each was
    # retried with the same parameters (the owner-less one had drawn none), and no draw was repeated
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 3
    retries = {t.system_attrs["retry_history"][-1]: t for t in trials if "retry_history" in t.system_attrs}
    assert sorted(retries) == sorted(t.number for t in failed)
    for dead in failed:
        assert not dead.params or retries[dead.number].params == dead.params
    finished = [tuple(t.params.items()) for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == len(set(finished)) == 3


def test_timed_kills_spread_over_a_run_resume_to_the_same_numbers(suite, uninterrupted):
    """Kills at fixed delays after each start: the first lands in the first seconds (imports, store creation),
    the later ones wherever the run has got to."""
    out = suite.parent / "timed"
    args = ("run", str(suite), "--out", str(out / "results"), "--report", str(out / "report"), "--quiet")
    uri = f"sqlite:///{out / 'results' / 'mlflow.db'}"
    for delay in (3.0, 7.0, 11.0, 16.0):
        command = [sys.executable, "-m", "harness", *args, "--save-weights", "--tracking-uri", uri]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    result = _run(suite, out)
    assert result.returncode == 0, result.stderr
    _assert_same_as_uninterrupted(out, uninterrupted)


def _assert_same_as_uninterrupted(out: Path, reference: Path) -> None:
    """Same records (numbers, choices, curves; not costs, environment or how many attempts the search took),
    one finished tracking run per cell and per trial attempt, no trial left running, no temporary file."""
    got, want = (_comparable(ResultStore(o / "results").records()) for o in (out, reference))
    assert got == want

    states = {t.state for t in _trials(out)}
    assert not states & {TrialState.RUNNING, TrialState.WAITING}

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{out / 'results' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["killed"])
    assert "RUNNING" not in set(runs["status"])
    seeds = runs[runs["tags.bench.kind"] == "seed"]
    hashes = sorted(r.config_hash for r in ResultStore(out / "results").records())
    assert sorted(seeds["tags.bench.config_hash"]) == hashes
    assert set(seeds["status"]) == {"FINISHED"}
    trial_runs = runs[runs["tags.bench.kind"] == "trial"]
    assert trial_runs["tags.bench.trial"].is_unique  # no attempt logged twice
    by_number = {t.number: t.state for t in _trials(out)}
    expected = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}
    for number, status in zip(trial_runs["tags.bench.trial"], trial_runs["status"], strict=True):
        assert status == expected[by_number[int(number)]], (number, status)

    leftovers = [p for p in out.rglob(".*") if ".tmp" in p.name]
    assert not leftovers


def _comparable(records) -> dict:
    kept = {}
    for record in records:
        fields = record.model_dump(exclude={"cost", "env"})
        if fields["search"] is not None:  # the majority row is not searched
            fields["search"] = {k: fields["search"][k] for k in ("metric", "params", "best_value")}
        kept[record.config_hash] = fields
    return kept


def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{out / 'results' / 'optuna.db'}"
    (study,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=study.study_name, storage=storage).get_trials()


# ---------------------------------------------------------------------------------------------- stores


def test_a_kill_during_store_creation_never_leaves_a_half_made_store(tmp_path):
    """MLflow's migrations take seconds: kills at moments spread over them leave no store or a whole one."""
    path = tmp_path / "mlflow.db"
    code = (
        "import pathlib, harness.run.stores as s; "
        f"s.open_tracking_store('sqlite:///{path}', pathlib.Path('{tmp_path}'))"
    )
    outcomes = set()
    for delay in (1.5, 2.5, 3.0, 3.5, 4.0):
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        outcomes.add(path.exists())
        if path.exists():
            open_tracking_store(f"sqlite:///{path}", tmp_path)  # opens as it is: no rebuild needed
            from mlflow.tracking import MlflowClient

            assert MlflowClient(f"sqlite:///{path}").search_experiments()
            path.unlink()
    assert False in outcomes  # at least one kill landed inside creation


def test_a_half_migrated_store_of_an_earlier_version_is_rebuilt_and_one_with_runs_is_never_touched(toy, tmp_path):
    """A store whose migrations stopped short of the last (as a kill mid-creation left it, before stores were made
    whole) holds no runs: it is rebuilt. One that holds runs is left alone, with one line saying what to do."""
    from alembic.script import ScriptDirectory
    from mlflow.exceptions import MlflowException
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out"
    url = f"sqlite:///{out / 'mlflow.db'}"
    make_whole(url, lambda at: MlflowClient(tracking_uri=at).search_experiments())
    script = ScriptDirectory.from_config(_get_alembic_config(url))
    short = script.get_revision(script.get_current_head()).down_revision
    with sqlite3.connect(out / "mlflow.db") as db:
        db.execute("update alembic_version set version_num = ?", (short,))
    with pytest.raises(MlflowException, match="out-of-date database schema"):
        MlflowClient(tracking_uri=url).search_experiments()  # what every later run tripped on

    args = ("run", str(toy()), "--out", str(out), "--report", str(tmp_path / "report"), "--quiet")
    result = bench(*args)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(out / "mlflow.db") as db:  # (read directly: this process's MLflow keeps the old file open)
        assert db.execute("select version_num from alembic_version").fetchone()[0] == script.get_current_head()
        assert db.execute("select count(*) from runs").fetchone()[0] == 2  # the group and its seed

    with sqlite3.connect(out / "mlflow.db") as db:  # now the same break in a store that holds runs
        db.execute("update alembic_version set version_num = ?", (short,))
    result = bench(*args, "--force")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"tracking store {out / 'mlflow.db'}: MLflow cannot open it and it holds runs" in result.stderr
    assert ResultStore(out).records()  # the records are untouched


def test_make_whole_links_never_replaces(tmp_path):
    path = tmp_path / "store.db"
    make_whole(f"sqlite:///{path}", lambda url: sqlite3.connect(url.removeprefix("sqlite:///")).close())
    path.write_bytes(b"theirs")
    make_whole(f"sqlite:///{path}", lambda url: pytest.fail("an existing store is never made again"))
    assert path.read_bytes() == b"theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]


# ---------------------------------------------------------------------------------------------- one line


@pytest.mark.parametrize(
    "flags, names",
    [
        (("--tracking-uri", "http://127.0.0.1:{port}"), "tracking store http://127.0.0.1:{port}: "),
        (("--no-tracking", "--storage", "/proc/routebench/studies.log"), "search storage /proc/routebench/studies.log"),
        (("--no-tracking", "--out", "/proc/routebench"), "/proc/routebench/.lock: cannot create it"),
    ],
)
def test_a_store_or_folder_that_fails_is_one_line_naming_it(suite, tmp_path, flags, names):
    port = free_port()
    flags = tuple(f.format(port=port) for f in flags)
    args = ("run", str(suite), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "report"), "--quiet")
    result = bench(*args, *flags, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and names.format(port=port) in line, line


def test_an_unwritable_report_folder_is_one_line_naming_the_file(suite, uninterrupted, tmp_path):
    shutil.copytree(uninterrupted / "results", tmp_path / "results")
    args = ("run", str(suite), "--out", str(tmp_path / "results"), "--report", "/proc/routebench", "--no-tracking")
    result = bench(*args, "--quiet")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: /proc/routebench/leaderboard.md: cannot write it"), line
