"""Cells on a Dask cluster: the same records as a serial run, faults that cost a rerun and nothing else, searches
that share a study, one writer, one run per output folder. Every cluster binds 127.0.0.1; processes the tests
start are stopped by PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from harness.core.errors import BenchError
from harness.records.store import ResultStore
from harness.run.engine import local_cluster
from harness.run.runner import RunOptions, _SuiteRun
from harness.run.tracking import Tracker
from harness.suite.expand import expand, load_suite

from .conftest import ONE_THREAD, REPO, bench, free_port

SAME = ("config_hash", "status", "config", "metrics", "history", "routing_stats", "error")


def _records(out: Path) -> dict[str, dict]:
    return {r.config_hash: r.model_dump(include=set(SAME)) for r in ResultStore(out).records()}


def _mlflow_runs(uri: str, suite: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[suite])


def _workers(pid: int) -> list[psutil.Process]:
    """The Dask worker processes a ``bench run --workers`` started (its nannies spawn them)."""
    return [p for p in psutil.Process(pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


def _popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def test_two_workers_run_the_smoke_suite_to_a_serial_runs_records_and_log_to_a_server(
    smoke_serial, mlflow_server, tmp_path
):
    from mlflow.tracking import MlflowClient

    serial, _, serial_result = smoke_serial
    assert serial_result.returncode == 0, serial_result.stderr
    out = tmp_path / "out"
    args = ("run", "suites/smoke.yaml", "--out", str(out), "--report", str(tmp_path / "r"), "--quiet")
    result = bench(*args, "--workers", "2", "--save-weights", "--tracking-uri", mlflow_server)
    assert result.returncode == 0, result.stderr

    assert _records(out) == _records(serial)  # same seeds, same numbers, bit for bit
    for name in ("predictions", "scores"):
        assert {p.name: p.read_text() for p in (out / name).iterdir()} == {
            p.name: p.read_text() for p in (serial / name).iterdir()
        }
    weights = sorted(p.relative_to(out) for p in (out / "weights").rglob("*") if p.is_file())
    assert weights == sorted(p.relative_to(serial) for p in (serial / "weights").rglob("*") if p.is_file())
    assert all((out / w).read_bytes() == (serial / w).read_bytes() for w in weights)
    assert not (out / "mlflow.db").exists()  # the driver logged everything to the server

    # the driver replayed what each worker's training loop reported: one run per cell, steps and epochs intact
    runs = _mlflow_runs(mlflow_server, "smoke")
    parents, seeds = runs[runs["tags.bench.kind"] == "group"], runs[runs["tags.bench.kind"] == "seed"]
    records = {r.config_hash: r for r in ResultStore(out).records()}
    assert len(parents) == 4 and len(seeds) == 6  # smoke: 4 cells without their seed, 6 cells
    assert set(seeds["tags.mlflow.parentRunId"]) == set(parents["run_id"])
    assert sorted(seeds["tags.bench.config_hash"]) == sorted(records)
    assert set(runs["status"]) == {"FINISHED"}
    assert all(runs["tags.mlflow.source.git.commit"].str.len() == 40)
    client = MlflowClient(tracking_uri=mlflow_server)
    for _, run in seeds.iterrows():
        record = records[run["tags.bench.config_hash"]]
        headline = record.metrics.headline
        assert run[f"metrics.test/{headline}"] == pytest.approx(record.metrics.test[headline])
        assert run["params.train.lr"] == str(record.config["train"]["lr"])
        steps = client.get_metric_history(run["run_id"], "train/loss")
        assert [m.step for m in steps] == list(range(1, record.cost.steps + 1))
        assert steps[0].timestamp < steps[-1].timestamp  # when each step was taken, not when it was replayed
        epochs = client.get_metric_history(run["run_id"], f"validation/{headline}")
        assert [m.value for m in epochs] == pytest.approx([h.validation[headline] for h in record.history])
        artifacts = {a.path for a in client.list_artifacts(run["run_id"])}
        assert artifacts == {"record.json", "predictions.json"} | ({"per_type.json"} if headline == "f1" else set())

    # a second run finds every cell done and adds no run
    assert bench(*args, "--workers", "2", "--tracking-uri", mlflow_server).returncode == 0
    assert sorted(_mlflow_runs(mlflow_server, "smoke")["run_id"]) == sorted(runs["run_id"])


def test_a_worker_killed_mid_cell_costs_a_rerun_and_nothing_else(toy, tmp_path):
    path = toy(seeds="[1, 2, 3]", epochs=6)
    out, reference = tmp_path / "out", tmp_path / "serial"
    proc = _popen("run", str(path), "--out", str(out), "--report", str(tmp_path / "r"), "--workers", "2")
    lines, killed, inside = [], None, set()
    try:
        for line in proc.stderr:
            lines.append(line)
            if match := re.search(r"\[cell-(\w+)\] epoch", line):
                inside.add(match.group(1))
            if match := re.search(r"\((\w+)\): test f1", line):
                inside.discard(match.group(1))
            if killed is None and len(inside) == 2:  # both workers are inside a cell: either one will do
                killed = _workers(proc.pid)[0]
                killed.send_signal(signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, "".join(lines)
    assert killed is not None and not killed.is_running()
    started = [line for line in lines if line.endswith(": running\n")]
    assert len(started) == 4  # the killed cell ran again on a worker; no other cell did

    serial = bench("run", str(path), "--out", str(reference), "--report", str(tmp_path / "r2"), env=ONE_THREAD)
    assert serial.returncode == 0, serial.stderr
    assert _records(out) == _records(reference)
    assert sorted(p.name for p in (out / "cells").iterdir()) == sorted(p.name for p in (reference / "cells").iterdir())
    runs = _mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "toy")
    seeds = runs[runs["tags.bench.kind"] == "seed"]
    assert sorted(seeds["tags.bench.config_hash"]) == sorted(_records(out))  # one run per cell, none twice
    assert set(runs["status"]) == {"FINISHED"}


def test_a_searched_suite_spreads_its_trials_over_two_workers(searched, tmp_path):
    path, out = searched(trials=4), tmp_path / "out"
    result = bench("run", str(path), "--out", str(out), "--report", str(tmp_path / "r"), "--quiet", "--workers", "2")
    assert result.returncode == 0, result.stderr

    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'optuna.db'}")
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))  # none duplicated, none lost
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    # both workers took trials; two that ended together may each start one more (at most workers - 1 extra)
    assert 4 <= len(trials) <= 5 and len({t.user_attrs["pid"] for t in trials}) == 2
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)  # no suggestion made twice
    records = ResultStore(out).records()
    assert sorted(r.status for r in records) == ["done", "done"]
    assert {r.search.trials["complete"] + r.search.trials["pruned"] for r in records} == {len(trials)}
    runs = _mlflow_runs(f"sqlite:///{out / 'mlflow.db'}", "searched")
    trial_runs = runs[runs["tags.bench.kind"] == "trial"]
    assert sorted(trial_runs["tags.bench.trial"].astype(int)) == [t.number for t in trials]


def test_a_failing_cell_is_recorded_once_not_retried_on_workers(toy, tmp_path):
    result = bench(
        "run",
        str(toy(lr=1e30, epochs=1)),
        "--out",
        str(tmp_path / "out"),
        "--report",
        str(tmp_path / "r"),
        "--workers",
        "2",
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("FAILED: CellFailed: loss became nan") == 1
    assert result.stderr.count(": running") == 1
    (record,) = ResultStore(tmp_path / "out").records()
    assert record.status == "failed"


def test_ctrl_c_stops_the_workers_and_leaves_no_partial_record(toy, tmp_path):
    path = toy(seeds="[1, 2]", epochs=40)
    proc = _popen("run", str(path), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "r"), "--workers", "2")
    lines, workers = [], []
    for line in proc.stderr:
        lines.append(line)
        if "epoch 1/40" in line:
            workers = _workers(proc.pid)
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stderr.readlines()
    assert proc.wait(timeout=60) == 130, "".join(lines)
    assert lines[-1].startswith("interrupted: finished cells are recorded") and "Traceback" not in "".join(lines)
    assert len(workers) == 2 and not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert not list((tmp_path / "out").glob("cells/*.json"))


def test_an_existing_cluster_runs_the_suite_and_an_unreachable_one_is_one_line(toy, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD}
    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{port}"
    logs = (tmp_path / "dask.log").open("w")
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], stderr=logs, env=env
    )
    worker = subprocess.Popen(
        [dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"], stderr=logs, env=env
    )
    try:
        suite = toy(seeds="[1, 2]", epochs=1)
        result = bench(
            "run", str(suite), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "r"), "--scheduler", address
        )
        assert result.returncode == 0, result.stderr
        assert sorted(r.status for r in ResultStore(tmp_path / "out").records()) == ["done", "done"]
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)
        logs.close()

    gone = bench(
        "run", str(toy()), "--out", str(tmp_path / "out2"), "--report", str(tmp_path / "r"), "--scheduler", address
    )
    assert gone.returncode == 2
    assert gone.stderr.startswith(f"error: --scheduler {address}: cannot reach a Dask scheduler there")
    assert len(gone.stderr.strip().splitlines()) == 1


def test_remote_workers_refuse_a_sqlite_study(searched, tmp_path):
    """SQLite lives on one machine: workers elsewhere would each open their own empty study."""
    path = searched()
    (cell, *_) = expand(load_suite(path), path)
    engine = SimpleNamespace(remote=True, workers=2, device="cpu", live_tracking=False)
    run = _SuiteRun([cell], ResultStore(tmp_path), RunOptions(), engine, Tracker(None), print)
    with pytest.raises(BenchError, match=r"^--storage: searches on remote Dask workers need a study storage"):
        run._storage_url(cell)
    run.options = RunOptions(storage=str(tmp_path / "shared" / "study.log"))
    assert run._storage_url(cell) == str(tmp_path / "shared" / "study.log")


def test_local_workers_split_the_cores_and_get_one_gpu_each():
    """The GPU path's wiring, checked without GPUs: worker i sees only GPU i, torch gets its share of threads,
    glibc keeps its own malloc tuning."""
    cluster = local_cluster(2, threads=1, gpus=["0", "1"])
    try:
        from distributed import Client

        with Client(cluster, set_as_default=False) as client:
            assert client.scheduler.address.startswith("tcp://127.0.0.1:")
            names = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")
            env = client.run(lambda: tuple(os.environ.get(name) for name in names))
            assert sorted(env.values()) == [("0", "1", None), ("1", "1", None)]
            assert all(address.startswith("tcp://127.0.0.1:") for address in env)
    finally:
        cluster.close()


def test_one_run_per_output_folder_and_a_killed_runs_lock_does_not_block(toy, tmp_path):
    path, out = toy(seeds="[1, 2]", epochs=200), tmp_path / "out"
    proc = _popen("run", str(path), "--out", str(out), "--report", str(tmp_path / "r"))
    try:
        for line in proc.stderr:
            if "epoch 1/200" in line:
                break
        second = bench("run", str(path), "--out", str(out), "--report", str(tmp_path / "r"))
        assert second.returncode == 2
        assert second.stderr.strip().startswith(f"error: {out}: in use by bench run (pid {proc.pid} on ")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert (out / ".lock").read_text().startswith("bench run (pid")  # left behind by the killed run
    faster = toy(seeds="[1, 2]", epochs=1, name="faster.yaml")  # same folder, a quicker suite to finish
    third = bench("run", str(faster), "--out", str(out), "--report", str(tmp_path / "r"), "--quiet")
    assert third.returncode == 0, third.stderr


def test_the_documented_slurm_example_makes_the_job_script_it_promises(monkeypatch):
    """The dask-jobqueue script of docs/devices-and-clusters.md, run as written except for its scheduler's address
    (127.0.0.1 here) and without submitting jobs: its arguments must be the installed dask-jobqueue's and say what
    the page says."""
    import builtins

    import dask_jobqueue

    readme = (REPO / "docs" / "devices-and-clusters.md").read_text()
    start = readme.index("from dask_jobqueue import SLURMCluster")
    example = readme[start : readme.index("```", start)]
    made: list = []

    class Local(dask_jobqueue.SLURMCluster):
        def __init__(self, **kwargs):
            kwargs["scheduler_options"] = kwargs["scheduler_options"] | {"host": "127.0.0.1", "port": free_port()}
            super().__init__(**kwargs)
            made.append(self)

        def scale(self, jobs=0, **kwargs):
            made.append(jobs)

    monkeypatch.setattr(dask_jobqueue, "SLURMCluster", Local)
    monkeypatch.setattr(builtins, "input", lambda *_: "")
    try:
        exec(compile(example, "docs/devices-and-clusters.md", "exec"), {})
        cluster, jobs = made
        script = cluster.job_script()
    finally:
        made[0].close()
    assert jobs == 8
    assert "#SBATCH -p gpu" in script and "#SBATCH --gres=gpu:1" in script and "#SBATCH -t 08:00:00" in script
    assert "#SBATCH --cpus-per-task=8" in script and "export OMP_NUM_THREADS=8" in script
    assert "source /path/to/routebench/.venv/bin/activate" in script
    assert "--nthreads 1 " in script and "--no-nanny" in script and "--nworkers" not in script
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
