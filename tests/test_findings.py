"""Hypotheses and adaptive seeds: verdicts from synthetic records checked by hand, the sequential plan's stopping
and extending, resume after a kill, and the wiring through `bench run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.analysis.findings import claim_verdict
from harness.analysis.report import write_report
from harness.records.record import Record
from harness.records.settings import Hypothesis, ReportSettings, SeedPlan
from harness.records.store import ResultStore
from harness.run.adaptive import run_adaptive
from harness.run.runner import RunSummary
from harness.suite.expand import expand, load_suite

from .conftest import bench
from .test_report import _record

T = 4.302653  # t(0.975, 2 degrees of freedom)


def _hypothesis(name: str, a: str, b: str, expect: str, margin: float = 0.0) -> Hypothesis:
    return Hypothesis(name=name, a={"method": a}, b={"method": b}, expect=expect, margin=margin)


def test_each_verdict_from_seed_level_intervals_computed_by_hand(tmp_path):
    """adapter − full = 9, 10, 11 points by seed: mean 10, sd 1, interval 10 ± t·1/√3 = [7.52, 12.48]; lora − full
    = 1, 2, 3: [−0.48, 4.48]. So "adapter > full" is reproduced, "full > adapter" contradicted, and "lora > full"
    undecided at three seeds."""
    base = {1: 0.80, 2: 0.70, 3: 0.75}
    records = [
        _record(method, seed, score + shift / 100)
        for seed, score in base.items()
        for method, shift in (("full", 0), ("adapter", 9 + seed - 1), ("lora", seed))
    ]
    settings = ReportSettings(
        hypotheses=[
            _hypothesis("adapters beat full", "adapter", "full", "a > b"),
            _hypothesis("full beats adapters", "full", "adapter", "a > b"),
            _hypothesis("lora beats full", "lora", "full", "a > b"),
        ]
    )
    paths = write_report(records, tmp_path / "report", settings)
    md, brief = paths[0].read_text(), paths[4].read_text()
    half = T / 3**0.5
    assert f"[{10 - half:.2f}, {10 + half:.2f}]" == "[7.52, 12.48]"
    lines = {line.split(":")[0]: line for line in brief.splitlines() if " hypothesis " in line}
    assert lines["sst2 hypothesis adapters beat full"].startswith(
        "sst2 hypothesis adapters beat full: reproduced (expect a > b; Δ +10.00 [7.52, 12.48]; seeds 3/3 paired)"
    )
    assert "full beats adapters: contradicted (expect a > b; Δ -10.00 [-12.48, -7.52]" in brief
    assert "lora beats full: undecided (expect a > b; Δ +2.00 [-0.48, 4.48]" in brief
    assert "## Findings" in md and "each hypothesis is tested at this level on its own" in md.lower()
    html = paths[3].read_text()
    assert "<h2>Findings</h2>" in html and "contradicted" in html


@pytest.mark.parametrize(
    ("expect", "margin", "low", "high", "verdict"),
    [
        ("a >= b", 1.0, -0.9, 2.0, "reproduced"),  # no worse than 1 point
        ("a >= b", 1.0, -3.0, -1.1, "contradicted"),
        ("a >= b", 1.0, -1.5, 0.5, "undecided"),
        ("a == b", 1.0, -0.5, 0.8, "reproduced"),
        ("a == b", 1.0, 1.0, 3.0, "contradicted"),
        ("a == b", 1.0, -2.0, 0.5, "undecided"),
        ("a < b", 0.0, -2.0, -0.1, "reproduced"),  # mirrored: b − a in [0.1, 2]
        ("a <= b", 0.5, 0.6, 2.0, "contradicted"),
        ("a > b", 0.5, 0.2, 2.0, "undecided"),  # better, but maybe not by the margin
    ],
)
def test_claims_with_margins(expect, margin, low, high, verdict):
    assert claim_verdict(expect, margin, low, high) == verdict


ADAPTIVE = """
name: adaptive
tasks:
  - name: toy-ner
    type: ner
    format: conll
    files: {train: train.conll, validation: validation.conll, test: test.conll}
backbones: [tiny-bert]
methods: [full, lora, adapter]
seeds: {min: 3, max: 6}
data_dir: .
"""

# per seed, points above the baseline: adapters far and steadily (decided at once), LoRA within the noise
SHIFTS = {"full": [0] * 6, "adapter": [9, 10, 11, 10, 9, 11], "lora": [1, -1, 2, -2, 1, -1]}


class FakeRun:
    """Writes each cell's record as `bench run` would, with scores from SHIFTS; ``kill_after`` records, raises as
    a killed run would stop (nothing half-written: records are written whole)."""

    def __init__(self, store: ResultStore, kill_after: int | None = None) -> None:
        self.store, self.kill_after, self.written = store, kill_after, 0

    def __call__(self, batch) -> RunSummary:
        ran = skipped = 0
        for cell in batch:
            if self.store.is_done(cell.config_hash):
                skipped += 1
                continue
            if self.kill_after is not None and self.written == self.kill_after:
                raise KeyboardInterrupt
            score = 0.7 + 0.03 * (cell.seed % 3) + SHIFTS[cell.method.name][cell.seed - 1] / 100
            metrics = {"headline": "f1", "test": {"f1": score}, "validation": {"f1": score}}
            self.store.write(cell.record("done", metrics, {}))
            ran, self.written = ran + 1, self.written + 1
        return RunSummary(ran, skipped, 0, [c.config_hash for c in batch])


def _adaptive(tmp_path: Path, write, out: str, kill_after: int | None = None) -> tuple[ResultStore, ReportSettings]:
    path = write("adaptive.yaml", ADAPTIVE)
    suite = load_suite(path)
    settings = suite.report.model_copy(update={"plan": suite.plan})
    store = ResultStore(tmp_path / out)
    run_adaptive(expand(suite, path), settings, store, FakeRun(store, kill_after))
    return store, settings


def _seeds(records: list[Record]) -> dict[str, list[int]]:
    seeds: dict[str, list[int]] = {}
    for r in records:
        seeds.setdefault(r.row.method_name, []).append(int(r.row.unit))
    return {k: sorted(v) for k, v in seeds.items()}


def test_adaptive_seeds_stop_a_decided_row_and_extend_an_undecided_one(tmp_path, write):
    """At look 3 (alpha 0.05 / 4 looks) adapters vs full is decided (every seed 9–11 points up); LoRA vs full is not
    at any look, so LoRA and the baseline it is compared with run to max; the report says why each stopped."""
    store, settings = _adaptive(tmp_path, write, "out")
    assert _seeds(store.records()) == {"full": [1, 2, 3, 4, 5, 6], "lora": [1, 2, 3, 4, 5, 6], "adapter": [1, 2, 3]}
    report = write_report(store.records(), tmp_path / "report", settings)[0].read_text()
    stopped = {
        cells[1]: cells[2:]
        for line in report.splitlines()
        if (cells := [c.strip() for c in line.split("|")[1:-1]]) and cells[0] == "toy-ner" and len(cells) == 4
    }
    assert stopped["adapter/none"] == ["3", "decided: adapter/none vs baseline differs at seed 3"]
    assert stopped["lora/none"] == ["6", "max seeds (6); undecided: lora/none vs baseline"]
    assert stopped["full/none"][0] == "6" and stopped["full/none"][1].startswith("max seeds (6); undecided: lora/none")
    assert SeedPlan(min=3, max=6).looks == 4 and "0.9875 (1 − 0.05/4" in report


def test_adaptive_seeds_resume_after_a_kill_with_the_same_decisions(tmp_path, write):
    """Killed after 10 records (between the two cells of seed 4), then run again: the same cells end up done, none
    twice."""
    whole, _ = _adaptive(tmp_path, write, "whole")
    with pytest.raises(KeyboardInterrupt):
        _adaptive(tmp_path, write, "killed", kill_after=10)
    assert len(ResultStore(tmp_path / "killed").records()) == 10
    resumed, _ = _adaptive(tmp_path, write, "killed")
    assert sorted(r.config_hash for r in resumed.records()) == sorted(r.config_hash for r in whole.records())


def test_bench_run_with_a_seed_plan_and_hypotheses_ends_with_their_verdicts(toy, tmp_path, write):
    """Through the command line on tiny models: `seeds: {min: 2, max: 3}` and one hypothesis; a hypothesis side that
    names no row of the suite is a one-line error at validation."""
    toy()
    suite = write(
        "plan.yaml",
        ADAPTIVE.replace("min: 3, max: 6", "min: 2, max: 3").replace("[full, lora, adapter]", "[full, adapter]")
        + "train: {epochs: 2, batch_size: 16, lr: 3.0e-3, max_length: 32, warmup_ratio: 0.0}\n"
        + "report:\n  hypotheses:\n    - {name: dense wins, a: {method: full}, b: {method: adapter}, expect: a > b}\n",
    )
    result = bench("run", str(suite), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "r"), "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "toy-ner hypothesis dense wins: " in result.stdout
    assert "## Seeds" in (tmp_path / "r" / "leaderboard.md").read_text()
    records = ResultStore(tmp_path / "out").records()
    assert {int(r.row.unit) for r in records} <= {1, 2, 3} and len(records) >= 4

    bad = write("bad.yaml", suite.read_text().replace("b: {method: adapter}", "b: {method: lora}"))
    result = bench("validate", str(bad))
    assert result.returncode != 0
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "dense wins" in text)
    assert (
        result.stderr.strip() == f"error: {bad}:{line}: report.hypotheses[0].b: method=lora matches no row of the suite"
    )


def test_a_hypothesis_about_the_router_compares_its_load_entropy(tmp_path):
    """Switch without the balance loss collapses (entropy far below log 4 on every seed), with it the load stays
    even: "a < b" on load_entropy is reproduced. By hand: d = −0.879, −0.778, −0.677, sd 0.101, interval
    −0.778 ± 4.3027 · 0.101/√3 = [−1.029, −0.527]."""
    records = [
        _record("full", seed, 0.8, routing={"strategy": "switch", "aux_loss": aux}, routing_stats={"load_entropy": h})
        for seed in (1, 2, 3)
        for aux, h in ((0.0, 0.4 + seed / 10), (0.01, 1.38 - seed / 1000))
    ]
    routing = sorted({r.row.routing for r in records})
    assert routing == ["switch", "switch aux_loss=0"]
    h = Hypothesis(
        name="collapse", a={"routing": routing[1]}, b={"routing": "switch"}, expect="a < b", metric="load_entropy"
    )
    brief = write_report(records, tmp_path / "r", ReportSettings(hypotheses=[h]))[4].read_text()
    assert "sst2 hypothesis collapse: reproduced (expect load_entropy: a < b; Δ -0.778 [-1.029, -0.527]" in brief


def test_a_comparison_with_an_unconverged_row_is_not_judged_and_gets_no_seeds(tmp_path):
    """The same numbers as the hand-computed test above, but one LoRA seed reached its cap: "lora beats full" is
    not converged (naming the row) instead of undecided, and an adaptive run would not give LoRA another seed;
    "adapters beat full" keeps its verdict."""
    from harness.analysis.findings import findings, open_keys
    from harness.analysis.leaderboard import leaderboards

    base = {1: 0.80, 2: 0.70, 3: 0.75}
    records = [
        _record(method, seed, score + shift / 100, converged=not (method == "lora" and seed == 2))
        for seed, score in base.items()
        for method, shift in (("full", 0), ("adapter", 9 + seed - 1), ("lora", seed))
    ]
    settings = ReportSettings(
        hypotheses=[
            _hypothesis("adapters beat full", "adapter", "full", "a > b"),
            _hypothesis("lora beats full", "lora", "full", "a > b"),
        ]
    )
    tables = leaderboards(records, settings)
    verdicts = {f.name: (f.verdict, f.unconverged) for f in findings(tables, settings)}
    assert verdicts == {"adapters beat full": ("reproduced", ()), "lora beats full": ("not converged", ("lora/none",))}
    assert open_keys(tables, settings, {r.row.key for r in records}) == set()
    brief = write_report(records, tmp_path / "report", settings)[4].read_text()
    assert "lora beats full: not converged (lora/none) (expect a > b; Δ +2.00 [-0.48, 4.48]" in brief
