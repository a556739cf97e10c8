"""End to end on the tiny backbone: learning, determinism, failed cells, resume after SIGKILL, reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from harness.records.store import ResultStore
from harness.run.runner import RunOptions, run_cells
from harness.run.suite_run import matching
from harness.suite.expand import expand, load_suite

from .conftest import REPO, bench

QUIET = RunOptions(progress=False)


def test_learns_a_toy_task_and_writes_a_full_record(toy, tmp_path):
    path = toy()
    out = tmp_path / "out"
    summary = run_cells(expand(load_suite(path), path), out, QUIET, log=lambda _: None)
    assert (summary.ran, summary.failed) == (1, 0)
    (record,) = ResultStore(out).records()
    assert record.status == "done"
    assert record.metrics.test["f1"] > 0.9  # entity words are unambiguous: a broken label path cannot do this
    assert set(record.metrics.test["per_type"]) == {"LOC", "PER"}
    assert record.metrics.sizes == {"train": 300, "validation": 60, "test": 80}
    assert [h.epoch for h in record.history] == [1, 2, 3, 4]
    assert record.metrics.validation == record.history[record.metrics.best_epoch - 1].validation
    cost = record.cost
    assert cost.trainable_params == cost.total_params > 0
    # toy sentences of 5-15 tokens, batches rounded up to a multiple of 8 tokens (PAD_MULTIPLE): length-grouped
    # batches leave 31 % padding, random ones would leave 45 % (unrounded: 3.5 % against 30.5 %)
    assert 0 <= cost.padding_fraction < 0.35 and cost.tokens_per_second > 0
    assert record.env["data_fingerprint"] and record.env["torch"] and "git" in record.env
    predictions = json.loads((out / "predictions" / f"{record.config_hash}.json").read_text())
    assert len(predictions) == 80


def test_same_seed_same_numbers(toy, tmp_path):
    path = toy(epochs=2)
    cells = expand(load_suite(path), path)
    for name in ("a", "b"):
        run_cells(cells, tmp_path / name, QUIET, log=lambda _: None)
    a, b = (ResultStore(tmp_path / name).records()[0] for name in ("a", "b"))
    assert a.metrics == b.metrics
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]


def test_failed_cell_is_recorded_and_the_suite_goes_on(toy, tmp_path):
    """An exploding learning rate makes the loss non-finite: that cell fails, the next one still runs."""
    bad, good = toy(lr=1e30, name="bad.yaml"), toy(epochs=1, name="good.yaml")
    cells = expand(load_suite(bad), bad) + expand(load_suite(good), good)
    lines: list[str] = []
    summary = run_cells(cells, tmp_path / "out", QUIET, log=lines.append)
    assert (summary.ran, summary.failed) == (2, 1)
    failed, done = sorted(ResultStore(tmp_path / "out").records(), key=lambda r: r.status != "failed")
    assert failed.status == "failed" and "loss became nan" in failed.error.lower()
    assert done.status == "done"
    assert any("FAILED" in line for line in lines)


def test_resume_after_sigkill_mid_cell(toy, tmp_path):
    path = toy(seeds="[1, 2, 3]", epochs=3)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "harness", "run", str(path), "--out", str(out), "--report", str(tmp_path / "r")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        second_started = False
        for line in proc.stderr:  # kill inside the second cell: after its first epoch, before its last
            second_started = second_started or (line.startswith("[2/3]") and "running" in line)
            if second_started and line.strip().startswith("epoch 1/3"):
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    records = ResultStore(out).records()  # every file present parses as a complete record
    assert [r.status for r in records] == ["done"]
    first = records[0].config_hash
    first_mtime = (out / "cells" / f"{first}.json").stat().st_mtime_ns

    result = bench("run", str(path), "--out", str(out), "--report", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert f"({first}): done earlier, skipped" in result.stderr
    assert sorted(r.status for r in ResultStore(out).records()) == ["done"] * 3
    assert (out / "cells" / f"{first}.json").stat().st_mtime_ns == first_mtime
    assert not list(out.glob("*/.*.tmp"))


def test_suites_sharing_a_results_folder_train_a_common_cell_once_and_each_reports_its_own_rows(toy, tmp_path):
    dense = toy(epochs=1)
    routed = toy(epochs=1, name="routed.yaml", routing="[none, {strategy: random, experts: 2}]")
    routed.write_text(routed.read_text().replace("name: toy\n", "name: toy-routed\n"))
    out = tmp_path / "shared"
    for path, report in ((routed, "b"), (dense, "a")):
        result = bench("run", str(path), "--out", str(out), "--report", str(tmp_path / report))
        assert result.returncode == 0, result.stderr
    # the dense suite's one cell was trained by the routed suite, and its record says so (suite: toy-routed)
    assert result.stderr.count("done earlier, skipped") == 1
    a, b = ((tmp_path / r / "leaderboard.md").read_text() for r in ("a", "b"))
    assert a.startswith("# Leaderboard: toy\n") and b.startswith("# Leaderboard: toy-routed\n")
    assert "| random experts=2 " not in a and "| random experts=2 " in b


def test_smoke_suite_end_to_end_and_report(smoke_serial, tmp_path):
    out, report, result = smoke_serial
    assert result.returncode == 0, result.stderr
    assert "## conll2003" in result.stdout and "## sst2" in result.stdout
    # the run ends with where to look: per task the best row, the baseline, the rows beyond noise and those that
    # trained to their cap (the smoke suite's fixed 1-2 epochs, no patience), then the page
    last = result.stdout.strip().splitlines()[-10:]
    assert last[0] == f"6 cells run (0 failed), 0 skipped as done; records in {out}/cells"
    parts = ("best", "baseline", "beyond noise (p Holm < 0.05)", "not converged (reached the training cap before ")
    assert [line.split(":")[0].split("patience")[0] for line in last[1:9]] == [
        f"{t} {part}" for t in ("conll2003", "sst2") for part in parts
    ]
    assert last[9] == f"report: {report / 'index.html'}"
    hashes = {p.stem for p in (out / "cells").glob("*.json")}
    assert len(hashes) == 6
    # every cell's trained weights: the full model, routed LoRA experts, the few-shot adapter
    assert {p.name for p in (out / "weights").iterdir()} == hashes
    assert all((out / "weights" / h / "weights.safetensors").is_file() for h in hashes)
    md = (report / "leaderboard.md").read_text()
    assert "| tiny-bert" in md and "trainable params" in md
    assert "| lora " in md and "| random experts=2 " in md and "| adapter style=pfeiffer " in md and "| 4-shot " in md
    csv = (report / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("backbone,method,routing,inference,regime,tuning,metric,test,test_sd,ci_low")
    assert len(csv) == 5
    assert {"index.html", "leaderboard.tex"} <= {p.name for p in report.iterdir()}

    again = bench("report", str(out), "--to", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "leaderboard.md").read_text() == md

    # without --report, the report goes to report/<name of the results folder>, never over the suite's own
    rerun = bench("run", str(REPO / "suites/smoke.yaml"), "--out", str(out), cwd=tmp_path)
    assert rerun.returncode == 0 and rerun.stderr.count("done earlier, skipped") == 6
    assert (tmp_path / "report" / out.name / "leaderboard.md").read_text() == md
    assert not (tmp_path / "report" / "smoke").exists()


def test_report_of_a_folder_without_records_is_a_clear_error(tmp_path):
    result = bench("report", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path}: no records (expected {tmp_path}/cells/<config_hash>.json)"


def test_only_picks_each_majority_rule_alone():
    """The NER suite's two majority floors (the class, each word's tag) are two rows, and `--only` tells them apart
    as it does a searched row and its hand-set twin."""
    path = REPO / "suites" / "ner.yaml"
    cells = [c for c in expand(load_suite(path), path) if c.method.name == "majority"]
    assert sorted(c.label for c in cells) == [
        "conll2003/minilm-l6/majority+word/none/full/seed1",
        "conll2003/minilm-l6/majority/none/full/seed1",
    ]
    assert [c.method.rule for c in matching(cells, ["*/majority/*"])] == ["class"]
    assert [c.method.rule for c in matching(cells, ["*/majority+word/*"])] == ["word"]
    assert len({c.row().label for c in cells}) == 2


def test_peak_memory_is_per_block_not_per_process():
    import time

    import torch

    from harness.run.memory import PeakMemory

    with PeakMemory() as before:
        pass
    with PeakMemory() as during:
        block = torch.ones(64 * 2**20 // 4 * 4)  # 256 MiB, touched
        time.sleep(0.2)  # held for 10 sampling intervals, as a cell holds its memory (freed at once, a busy
        del block  # machine's sampler could miss part of it: seen once at 193 MB of the 256)
    with PeakMemory() as after:
        pass
    assert during.peak_mb > before.peak_mb + 200
    assert after.peak_mb < during.peak_mb - 200  # a later block does not inherit an earlier peak


def test_peak_memory_does_not_count_heap_an_earlier_block_fragmented():
    import torch

    from harness.run.memory import PeakMemory

    with PeakMemory() as before:
        pass
    small = [torch.ones(4096) for _ in range(20_000)]  # 320 MiB of 16 KiB tensors: glibc's heap, not mmap
    pins = [torch.ones(16) for _ in range(20_000)]  # interleaved survivors keep the heap from shrinking itself
    del small
    with PeakMemory() as after:
        pass
    del pins
    assert after.peak_mb < before.peak_mb + 150


def test_bench_run_exits_1_when_a_cell_failed_and_still_reports(toy, tmp_path):
    result = bench("run", str(toy(lr=1e30, epochs=1)), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "r"))
    assert result.returncode == 1, result.stderr
    assert "FAILED: CellFailed: loss became nan" in result.stderr
    assert "| failed" in (tmp_path / "r" / "leaderboard.md").read_text()


def test_ctrl_c_mid_cell_is_one_line_and_resumable(toy, tmp_path):
    path = toy(seeds="[1, 2]", epochs=3)
    args = [sys.executable, "-m", "harness", "run", str(path), "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.strip().startswith("epoch 1/3"):
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stderr.readlines()
    assert proc.wait(timeout=60) == 130
    assert lines[-1].startswith("interrupted: finished cells are recorded") and "Traceback" not in "".join(lines)
    assert not list((tmp_path / "out").glob("cells/*.json"))  # the interrupted cell left no record


def _scripted_validation(monkeypatch, scores: list[float]) -> list[float]:
    """Validation returns ``scores`` in turn, from the start again for the next cell (the real metrics otherwise);
    returns the sum of the model's weights at each validation, to tell which state the run kept."""
    from harness.run import train as loop

    real, seen = loop.evaluate, []

    def scripted(model, batches, family, labels, batch_size):
        metrics, predictions, outputs = real(model, batches, family, labels, batch_size)
        seen.append(sum(float(p.detach().double().sum()) for p in model.parameters()))
        return metrics | {"f1": scores[(len(seen) - 1) % len(scores)]}, predictions, outputs

    monkeypatch.setattr(loop, "evaluate", scripted)
    return seen


def test_training_stops_when_patience_runs_out_and_keeps_the_best_state(toy, tmp_path, monkeypatch):
    """Validation every 5 steps (300 sentences / 16 = 19 steps an epoch), patience 2, min_delta 0.001: 0.5004
    after 0.5 is no improvement, 0.6 is (stale count back to 0), then 0.6 and 0.55 use up the patience at step 30,
    in epoch 2 of a cap of 20 epochs. The model tested is the one validated at step 20."""
    from harness.run import execute

    seen = _scripted_validation(monkeypatch, [0.2, 0.5, 0.5004, 0.6, 0.6, 0.55] + [0.9] * 100)
    tested = []
    real_test = execute.evaluate
    monkeypatch.setattr(
        execute,
        "evaluate",
        lambda model, *a: (
            tested.append(sum(float(p.detach().double().sum()) for p in model.parameters())) or real_test(model, *a)
        ),
    )
    path = toy(epochs=20)
    path.write_text(path.read_text().replace("warmup_ratio: 0.0}", "warmup_ratio: 0.0, eval_every: 5, patience: 2, "
                                             "min_delta: 0.001}"))  # fmt: skip
    out = tmp_path / "out"
    run_cells(expand(load_suite(path), path), out, QUIET, log=lambda _: None)
    (record,) = ResultStore(out).records()
    assert [(h.evaluation, h.epoch, h.step) for h in record.history] == [
        (1, 1, 5), (2, 1, 10), (3, 1, 15), (4, 2, 20), (5, 2, 25), (6, 2, 30)
    ]  # fmt: skip
    assert record.metrics.converged is True and record.cost.steps == 30
    assert (record.metrics.best_step, record.metrics.best_epoch, record.metrics.validation["f1"]) == (20, 2, 0.6)
    assert tested == [seen[3]] and len(set(seen)) == 6  # the state of validation 4, and every state differed


def test_a_run_that_reaches_its_cap_is_marked_not_converged_everywhere(toy, tmp_path, monkeypatch):
    """No patience: the run trains to its cap (2 epochs) and says so in the record, the leaderboard and the
    summary (the findings: ``test_findings``)."""
    _scripted_validation(monkeypatch, [0.5, 0.7])
    path = toy(seeds="[1, 2]", epochs=2)
    out, report = tmp_path / "out", tmp_path / "report"
    run_cells(expand(load_suite(path), path), out, QUIET, log=lambda _: None)
    records = ResultStore(out).records()
    assert [r.metrics.converged for r in records] == [False, False]
    assert [r.metrics.best_step for r in records] == [38, 38]
    from harness.analysis.report import write_report

    md, *_, brief = write_report(records, report)
    assert "| 0/2 (cap)   |" in md.read_text()
    assert "not converged (reached the training cap before patience ran out): full/none (2 of 2 cells)" in (
        brief.read_text()
    )
