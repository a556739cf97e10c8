"""Search and tracking: the space a user writes, resume after a kill, no peeking at test, MLflow runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.core.errors import BenchError
from harness.records.store import ResultStore
from harness.run.runner import RunOptions, run_cells
from harness.suite.expand import expand, load_suite
from harness.suite.search_space import CategoricalParam, FloatParam, IntParam, LogFloatParam

from .conftest import REPO, bench, free_port, get_when_up, toy_ner_lines

QUIET = RunOptions(progress=False)


def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{out / 'optuna.db'}"
    (study,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=study.study_name, storage=storage).get_trials()


# ---------------------------------------------------------------------------------------------- the space


def test_search_block_parses_every_kind_of_parameter(write):
    path = write(
        "suite.yaml",
        """
        name: s
        tasks: [sst2]
        backbones: [tiny-bert]
        seeds: [1, 2]
        methods: [lora]
        search:
          timeout_minutes: 30
          sampler: random
          pruner: hyperband
          metric: macro_f1
          space:
            lr: {type: log_float, low: 1.0e-5, high: 1.0e-3}
            warmup_ratio: {type: float, low: 0.0, high: 0.2, step: 0.05}
            epochs: {type: int, low: 1, high: 4}
            method.r: {type: categorical, choices: [4, 8, 16]}
        """,
    )
    cells = expand(load_suite(path), path)
    search = cells[0].search
    assert (search.trials, search.timeout_minutes, search.sampler, search.pruner) == (None, 30, "random", "hyperband")
    kinds = {name: type(param) for name, param in search.space.items()}
    assert kinds == {"lr": LogFloatParam, "warmup_ratio": FloatParam, "epochs": IntParam, "method.r": CategoricalParam}
    assert isinstance(search.pruner_for(), optuna.pruners.HyperbandPruner)

    # the best values are laid over the cell: method keys on the method, lr on both the method and training
    tuned = cells[0].with_params({"lr": 2e-4, "epochs": 3, "method.r": 16})
    assert (tuned.method.r, tuned.method.lr, tuned.train.lr, tuned.train.epochs) == (16, 2e-4, 2e-4, 3)
    assert tuned.config_hash != cells[0].config_hash and tuned.group_hash != cells[0].group_hash
    # where a study is stored is not part of what a cell is
    moved = cells[0].model_copy(update={"search": search.model_copy(update={"storage": "/elsewhere.log"})})
    assert moved.config_hash == cells[0].config_hash
    assert cells[0].config_hash != cells[0].model_copy(update={"search": None}).config_hash


SPACE_MISTAKES = [
    ("lr: {type: log_float, low: 0.0, high: 1.0e-3}", "search.space.lr.low", "greater than 0"),
    ("lr: {type: float, low: 0.1, high: 0.01}", "search.space.lr", "low (0.1) must be below high (0.01)"),
    ("lr: {type: uniform, low: 0.1, high: 0.2}", "search.space.lr", "'float', 'log_float', 'int', 'categorical'"),
    ("lr: {type: float, low: 0.1}", "search.space.lr.high", "Field required"),
    ("epochs: {type: int, low: 0, high: 3}", "search.space.epochs", "0 is not a valid epochs"),
    ("batch_size: {type: categorical, choices: [32]}", "search.space.batch_size.choices", "at least 2 items"),
    ("lrr: {type: float, low: 0.1, high: 0.2}", "search.space.lrr", "the training settings have no field 'lrr'"),
    ("method.rank: {type: int, low: 2, high: 8}", "search.space.method.rank", "method 'lora' has no field 'rank'"),
    ("method.r: {type: int, low: 0, high: 8}", "search.space.method.r", "0 is not a valid r"),
]


@pytest.mark.parametrize(("entry", "field", "fragment"), SPACE_MISTAKES, ids=[m[0][:32] for m in SPACE_MISTAKES])
def test_bad_search_space_is_one_line_with_file_line_and_field(write, entry, field, fragment):
    path = write(
        "suite.yaml",
        f"""
        name: s
        tasks: [sst2]
        backbones: [tiny-bert]
        seeds: [1]
        methods: [lora]
        search:
          trials: 3
          space:
            {entry}
        """,
    )
    with pytest.raises(BenchError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}:9: {field}:") and fragment in message, message


def test_search_without_budget_or_with_a_foreign_metric_is_rejected(write):
    base = "name: s\ntasks: [sst2]\nbackbones: [tiny-bert]\nseeds: [1]\nsearch:\n"
    base += "  space: {lr: {type: float, low: 0.1, high: 0.2}}\n"
    with pytest.raises(BenchError, match=r"suite.yaml:5: search: give trials, timeout_minutes or both"):
        load_suite(write("suite.yaml", base))
    with pytest.raises(
        BenchError, match=r"suite.yaml:8: search.metric: task sst2 reports accuracy, macro_f1, not 'f1'"
    ):
        load_suite(write("suite.yaml", base + "  trials: 2\n  metric: f1\n"))


# ---------------------------------------------------------------------------------------------- running


def test_selection_never_reads_the_test_split(searched, tmp_path):
    """Two runs that differ only in their test file make the same choices: every trial, the best parameters,
    each seed's best epoch and validation scores; only the test numbers differ."""
    scrambled = "".join(
        line.split()[0] + " O\n" if line.strip() else line for line in toy_ner_lines(80, 2).splitlines(True)
    )
    (tmp_path / "test-all-O.conll").write_text(scrambled)
    outs = {}
    for test in ("test.conll", "test-all-O.conll"):
        path = searched(trials=4, test=test, name=f"{test}.yaml")
        outs[test] = tmp_path / f"out-{test}"
        run_cells(expand(load_suite(path), path), outs[test], QUIET, log=lambda _: None)

    a, b = (_trials(out) for out in outs.values())
    assert [(t.state, t.params, t.value, t.intermediate_values) for t in a] == [
        (t.state, t.params, t.value, t.intermediate_values) for t in b
    ]
    assert any(t.state == TrialState.COMPLETE for t in a)
    ra, rb = (sorted(ResultStore(out).records(), key=lambda r: r.config["seed"]) for out in outs.values())
    for x, y in zip(ra, rb, strict=True):
        assert x.search.params == y.search.params and x.search.best_trial == y.search.best_trial
        assert (x.metrics.best_epoch, x.metrics.validation) == (y.metrics.best_epoch, y.metrics.validation)
        assert x.metrics.test["f1"] > 0.5 and y.metrics.test["f1"] == 0.0  # gold all O: no entity to find
    # the record accounts for the search's compute: every trial's steps, and what pruning saved
    summary = ra[0].search
    assert summary.steps == sum(t.user_attrs["steps"] for t in a)
    pruned = [t for t in a if t.state == TrialState.PRUNED]
    assert summary.trials["pruned"] == len(pruned)
    assert summary.steps_saved == sum(t.user_attrs["planned_steps"] - t.user_attrs["steps"] for t in pruned)


def test_kill_during_search_then_resume_finishes_the_same_study(searched, tmp_path):
    path, out = searched(trials=4), tmp_path / "out"
    args = [sys.executable, "-m", "harness", "run", str(path), "--out", str(out), "--report", str(tmp_path / "r")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _running(out / "optuna.db") == 1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = _trials(out)
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1 and not (out / "cells").exists()

    result = bench("run", str(path), "--out", str(out), "--report", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    after = _trials(out)
    states = [t.state for t in after]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    finished = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    # the dead trial is failed and its parameters retried once; finished trials kept their numbers and values
    (dead,) = [t for t in after if t.state == TrialState.FAIL]
    assert dead.number == killed[0].number
    (retry,) = [t for t in after if t.system_attrs.get("failed_trial") == dead.number]
    assert retry.params == dead.params and retry.state in (
        TrialState.COMPLETE,
        TrialState.PRUNED,
    )
    for old in before:
        if old.state != TrialState.RUNNING:
            assert after[old.number].value == old.value and after[old.number].state == old.state
    ran_again = [line for line in result.stderr.splitlines() if line.strip().startswith("trial ")]
    assert len(ran_again) == 4 - sum(t.state != TrialState.RUNNING for t in before)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 4  # no completed trial repeated
    assert sorted(r.status for r in ResultStore(out).records()) == ["done", "done"]

    # the tracking store agrees: the dead trial's run is failed, nothing is left running, one run per trial
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["searched"])
    assert "RUNNING" not in set(runs["status"])
    trial_runs = runs[runs["tags.bench.kind"] == "trial"]
    assert sorted(trial_runs["tags.bench.trial"].astype(int)) == sorted(t.number for t in after)
    assert trial_runs[trial_runs["tags.bench.trial"] == str(dead.number)]["status"].tolist() == ["FAILED"]


def _running(db: Path) -> int:
    """Trials after the first that are running and have reported an epoch (so their parameters are set; and
    the median pruner waits for 3 finished trials, so trial 1 cannot end early by pruning)."""
    if not db.exists():
        return 0
    query = """select count(distinct t.number) from trials t join trial_intermediate_values v using (trial_id)
               where t.state = 'RUNNING' and t.number >= 1"""
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute(query).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------- tracking


def test_default_stores_under_the_results_a_journal_file_and_tracking_off(searched, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path, journal = searched(trials=2), tmp_path / "studies.log"
    for name, flags in (("on", ()), ("off", ("--no-tracking", "--storage", str(journal)))):
        args = ("run", str(path), "--out", str(tmp_path / name), "--report", str(tmp_path / "report"), "--quiet")
        result = bench(*args, *flags)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "on" / "optuna.db").exists() and not (tmp_path / "off" / "optuna.db").exists()
    assert (tmp_path / "on" / "mlflow.db").exists() and (tmp_path / "on" / "mlartifacts").is_dir()
    assert not (tmp_path / "off" / "mlflow.db").exists() and not (tmp_path / "off" / "mlartifacts").exists()
    assert not (REPO / "mlruns").exists()
    # the journal file holds the same study, trial for trial (same seeds, same space)
    from_journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(from_journal)
    trials = optuna.load_study(study_name=summary.study_name, storage=from_journal).get_trials()
    assert [(t.params, t.value) for t in trials] == [(t.params, t.value) for t in _trials(tmp_path / "on")]

    # optuna-dashboard serves the study straight from the storage the run wrote
    port = free_port()
    dashboard = [str(Path(sys.executable).parent / "optuna-dashboard"), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*dashboard, f"sqlite:///{tmp_path / 'on' / 'optuna.db'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        studies = json.loads(get_when_up(f"http://127.0.0.1:{port}/api/studies", server))["study_summaries"]
        assert [s["study_name"] for s in studies] == [f"searched-{expand(load_suite(path), path)[0].group_hash}"]
    finally:
        server.terminate()
        server.wait(timeout=30)
