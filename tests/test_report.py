"""Reports and regression checks: statistics against hand-computed values, a rendered report from fixture
records, and `bench check` verdicts (drop, seed noise, missing, failed, malformed baseline)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from seqeval.metrics import f1_score

from harness.analysis import plots
from harness.analysis.agreement import agreement
from harness.analysis.check import simulate
from harness.analysis.leaderboard import leaderboards, read_leaderboards
from harness.analysis.report import write_report
from harness.analysis.stats import holm, seed_test, t_interval
from harness.analysis.summary import summary
from harness.records.record import Record, SearchSummary
from harness.records.settings import CheckRule, Hypothesis, ReportSettings
from harness.records.store import ResultStore
from harness.suite.cell import Cell
from harness.suite.search_space import Search
from harness.suite.specs import TrainConfig
from harness.tasks.base import TaskSpec
from harness.tasks.ner import entity_counts

from .conftest import REPO, bench

# ---------------------------------------------------------------------------------------------- statistics


def test_t_interval_has_its_stated_coverage_at_three_and_five_seeds():
    # by hand: mean 2, sd 1, n 3: 2 ± t(0.975, 2)·1/√3 = 2 ± 4.3027·0.57735
    low, high = t_interval([1.0, 2.0, 3.0])
    assert (low, high) == (pytest.approx(2 - 2.48414, abs=1e-4), pytest.approx(2 + 2.48414, abs=1e-4))
    assert t_interval([4.0, 4.0]) == (4.0, 4.0) and all(np.isnan(t_interval([5.0])))
    rng = np.random.default_rng(0)
    for n in (3, 5):
        draws = rng.normal(70.0, 1.0, size=(4000, n))
        covered = sum(low <= 70.0 <= high for low, high in map(t_interval, draws))
        assert 0.93 <= covered / len(draws) <= 0.97, (n, covered)


def test_the_seed_test_by_hand():
    """Paired over shared seeds: d = (1, 2, 3), mean 2, sd 1, se 1/√3, t = 2√3 on 2 df. Welch when no two seeds
    are shared: {1, 2} against {3, 4}, se √(0.5/2 + 0.5/2) = √0.5, df (0.5)² / (2 · 0.25²) = 2, t = −2/√0.5."""
    paired = seed_test({"1": 11, "2": 12, "3": 13}, {"1": 10, "2": 10, "3": 10, "4": 99})  # seed 4: unshared
    assert (paired.paired, paired.difference, paired.se, paired.df) == (True, 2.0, pytest.approx(3**-0.5), 2)
    assert paired.p == pytest.approx(2 * stats.t.sf(2 * 3**0.5, 2)) == pytest.approx(0.0742, abs=1e-4)
    assert paired.p == pytest.approx(stats.ttest_rel([11, 12, 13], [10, 10, 10]).pvalue)
    low, high = paired.interval(0.95)
    assert (low, high) == (pytest.approx(2 - 4.302653 / 3**0.5), pytest.approx(2 + 4.302653 / 3**0.5))
    # 80 % power at level 0.05: (t(0.975, 2) + t(0.8, 2)) · se = (4.3027 + 1.0607) / √3
    assert paired.detectable(0.05) == pytest.approx((4.302653 + 1.060660) / 3**0.5, abs=1e-4)
    welch = seed_test({"1": 1, "2": 2}, {"3": 3, "4": 4})
    assert (welch.paired, welch.difference, welch.se, welch.df) == (False, -2.0, pytest.approx(0.5**0.5), 2)
    assert welch.p == pytest.approx(stats.ttest_ind([1, 2], [3, 4], equal_var=False).pvalue)
    assert seed_test({"1": 5, "2": 5}, {"1": 5, "2": 5}).p == 1.0  # no difference, no spread
    assert seed_test({"1": 6, "2": 6}, {"1": 5, "2": 5}).p == 0.0  # a difference without spread is certain
    assert seed_test({"1": 1.0}, {"2": 2.0, "3": 3.0}) is None  # one trained model is not a comparison


def test_holm_adjustment_by_hand():
    # sorted 0.01, 0.03, 0.04: 3·0.01 = 0.03, 2·0.03 = 0.06, 1·0.04 → kept monotone at 0.06
    adjusted = holm([0.01, 0.04, 0.03, float("nan")])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and np.isnan(adjusted[3])


def _row(records, method: str) -> pd.Series:
    (table,) = leaderboards(records).values()
    return table.set_index("method").loc[method]


def test_a_tiny_effect_under_large_seed_variance_is_not_significant():
    """Per-example evidence is huge (every seed scored on the same test set), but the trained models vary far
    more than the effect: a seed-level test says so."""
    rng = np.random.default_rng(3)
    base, other = 0.80 + rng.normal(0, 0.02, 8), 0.801 + rng.normal(0, 0.02, 8)
    records = [_record("full", s, base[s]) for s in range(8)] + [_record("lora", s, other[s]) for s in range(8)]
    assert _row(records, "lora")["p"] > 0.2


def test_one_pair_of_rows_gets_one_p_in_the_leaderboard_the_findings_and_check(tmp_path):
    """LoRA against full fine-tuning on three paired seeds: the leaderboard's p, the finding's p and interval, and
    the standard error and degrees of freedom `bench check` bases its tolerance on all come from one test."""
    from harness.analysis.check import drop_test
    from harness.analysis.findings import findings

    full, lora = {1: 0.80, 2: 0.78, 3: 0.81}, {1: 0.77, 2: 0.765, 3: 0.79}
    records = [_record("full", s, v) for s, v in full.items()] + [_record("lora", s, v) for s, v in lora.items()]
    hypothesis = Hypothesis(name="lora trails", a={"method": "lora"}, b={"method": "full"}, expect="a < b")
    settings = ReportSettings(hypotheses=[hypothesis])
    tables = leaderboards(records, settings)
    expected = seed_test({str(s): 100 * v for s, v in lora.items()}, {str(s): 100 * v for s, v in full.items()})
    (finding,) = findings(tables, settings)
    assert tables["sst2"].set_index("method").loc["lora", "p"] == pytest.approx(expected.p)
    assert finding.look.p == pytest.approx(expected.p) and finding.look.paired
    assert (finding.look.low, finding.look.high) == pytest.approx(expected.interval(0.95))
    drop = drop_test({str(s): 100 * v for s, v in full.items()}, {str(s): 100 * v for s, v in lora.items()})
    assert (drop.se, drop.df, drop.test) == (pytest.approx(expected.se), expected.df, "paired")


def test_entity_counts_reproduce_seqeval():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "B-ORG"], ["B-PER", "O"]]
    counts = entity_counts(gold, pred)
    assert counts.tolist() == [[1, 1, 2], [1, 1, 1], [0, 1, 1]]
    correct, predicted, true = counts.sum(axis=0)
    assert 2 * correct / (predicted + true) == pytest.approx(f1_score(gold, pred))  # 2·2 / (3 + 4)


# ---------------------------------------------------------------------------------------------- fixtures

LR_RANGE = {"type": "log_float", "low": 1e-6, "high": 1.0}
INT_RANGE = {"type": "int", "low": 1, "high": 64}


def _record(method: str | dict, seed: int, score: float, *, task="sst2", regime="full", routing=None, **extra):
    """A done (or failed) record as `bench run` writes it: made by a cell, so its row is the cell's row. ``method``:
    a name or the method's parameters; ``search``: the values a search chose (float: a log-uniform lr range, int: an
    integer range)."""
    ner = task == "conll"
    headline = "f1" if ner else "accuracy"
    chosen = extra.pop("search", None)
    space = {k: INT_RANGE if isinstance(v, int) else LR_RANGE for k, v in (chosen or {}).items()}
    cell = Cell(
        suite="fixture",
        task=TaskSpec(name=task, type="ner" if ner else "classification", format="conll" if ner else "tsv"),
        backbone=extra.pop("backbone", "tiny"),
        method=method if isinstance(method, dict) else {"name": method},
        routing=routing or {"strategy": "none"},
        regime=regime,
        seed=seed,
        train=TrainConfig(lr=1e-3),
        data_dir="",
        search=Search(space=space, trials=4) if chosen else None,
    )
    cell = cell.with_params(chosen) if chosen else cell
    search = SearchSummary(
        study="s", storage="-", metric=f"validation {headline}", best_trial=0, best_value=score, params=chosen or {},
        trials={"complete": 4, "pruned": 0, "fail": 0}, steps=0, steps_saved=0,
    ) if chosen else None  # fmt: skip
    if extra.pop("status", "done") == "failed":
        return cell.record("failed", {"headline": headline}, {}, error="RuntimeError: fixture")
    return cell.record(
        "done",
        {
            "headline": headline,
            "test": {headline: score},
            "validation": {headline: score + 0.01},
            "converged": extra.pop("converged", None),
            "measures": extra.pop("measures", {}),
            "sizes": extra.pop("sizes", {}),
        },
        {},
        search=search,
        history=[{"epoch": e, "train_loss": 0.5, "validation": {headline: score * e / 3}} for e in (1, 2, 3)],
        routing_stats=extra.pop("routing_stats", {}),
        cost={
            "trainable_params": 1000 if method == "full" else 10,
            "train_seconds": 2.0,
            "tokens_per_second": 50.0,
            "peak_rss_mb": 300.0,
        },
    )


def _store(root: Path, records: list[Record]) -> ResultStore:
    store = ResultStore(root)
    for record in records:
        store.write(record)
    return store


# ---------------------------------------------------------------------------------------------- report


def test_report_from_fixture_records_has_every_table_and_plot_and_no_external_reference(tmp_path):
    routed = {"strategy": "random", "experts": 2}
    layers = {"load_entropy": 0.6, "layers": {"layer0.ffn": {"load": [0.5, 0.5]}, "layer1.ffn": {"load": [0.7, 0.3]}}}
    records = [
        *[_record("full", s, 0.80) for s in (1, 2, 3)],
        *[_record("lora", s, v) for s, v in ((1, 0.78), (2, 0.775), (3, 0.785))],
        *[_record("full", s, 0.79, routing=routed, routing_stats=layers) for s in (1, 2)],
        *[_record("full", s, 0.60, regime={"shots": k, "split_seed": s}) for s in (1, 2) for k in (4, 16)],
        *[_record("full", s, 0.70, task="conll") for s in (1, 2)],
        _record("adapter", 1, 0.75),
    ]
    store = _store(tmp_path / "results", records)
    paths = write_report(store.records(), tmp_path / "report", ReportSettings())
    assert [p.name for p in paths] == [
        "leaderboard.md", "leaderboard.csv", "leaderboard.tex", "index.html", "summary.txt"
    ]  # fmt: skip

    csv = pd.read_csv(paths[1])
    sst2 = csv[csv["task"] == "sst2"].set_index(["method", "routing", "regime"])
    assert sst2.loc[("full", "none", "full"), "baseline"]
    lora = sst2.loc[("lora", "none", "full")]
    # lora against full per seed: -2.0, -2.5, -1.5: mean -2, sd 0.5, se 0.5/√3, t = -4√3 on 2 df, p 0.0202. The
    # routed row is 1 point down on both its seeds and the few-shot rows (Welch: no (seed, split) unit shared with
    # the baseline) 20 points down on each: differences without spread, p 0. Holm over (0.0202, 0, 0, 0): 0.0202.
    p_lora = 2 * stats.t.sf(4 * 3**0.5, 2)
    assert lora["delta"] == pytest.approx(-2.0) and lora["p"] == pytest.approx(p_lora) == pytest.approx(0.0202, 1e-2)
    assert lora["p_holm"] == pytest.approx(p_lora) and lora["se"] == pytest.approx(0.5 / 3**0.5)
    few_shot = sst2.loc[("full", "none", "4-shot")]
    assert (few_shot["p"], few_shot["p_holm"]) == (0.0, 0.0)
    assert (lora["test"], lora["seeds"]) == (pytest.approx(78.0), 3)
    one_seed = sst2.loc[("adapter", "none", "full")]  # one trained model is not a comparison: no p
    assert one_seed["delta"] == pytest.approx(-5.0) and np.isnan(one_seed["p"])
    routed = sst2.loc[("full", "random experts=2", "full")]
    assert (routed["ci_low"], routed["ci_high"]) == (pytest.approx(79.0), pytest.approx(79.0))  # no spread
    assert routed["load_entropy"] == pytest.approx(0.6)

    # lora's detectable difference at the level Holm gives the first of 4 rows, 80 % power:
    # (t(1 − 0.0125/2, 2) + t(0.8, 2)) · 0.5/√3 = 2.87; the three rows without spread could detect any: median 0
    assert paths[4].read_text().splitlines()[3:] == [
        "sst2 best: full/none, accuracy 80.00 ± 0.00 (3 seeds)",
        "sst2 baseline: full/none, accuracy 80.00 ± 0.00 (3 seeds) (the best row)",
        "sst2 beyond noise (p Holm < 0.05): full/random experts=2 (merge) -1.00 (p < 0.001, Holm < 0.001); lora/none "
        "-2.00 (p 0.020, Holm 0.020); full/none, 4-shot -20.00 (p < 0.001, Holm < 0.001); full/none, 16-shot -20.00 "
        "(p < 0.001, Holm < 0.001); 0 other rows are not; with these seeds a difference is found (80% power) from "
        "about 0.00 points (median over the rows' spreads; smaller ones could not have been seen)",
    ]

    md = paths[0].read_text()
    assert "## sst2" in md and "## conll" in md and "**80.00 ± 0.00**" in md  # best test mean marked
    tex = paths[2].read_text()
    assert tex.count(r"\begin{tabular}") == 2 and r"\textbf{80.00 $\pm$ 0.00}" in tex

    page = paths[3].read_text()
    assert page.count("<table") == 2
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert images == [
        "Score against trainable parameters",
        "Few-shot regimes",
        "Expert load per layer",
        "Validation curves",
    ]
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:)""", page)  # nothing fetched from elsewhere
    assert not re.search(r"url\(|@import|<link|fetch\(|XMLHttpRequest", page)
    assert re.findall(r"<script[^>]*>", page) == ["<script>"]  # one inline script: sorting and filtering
    assert len(list((tmp_path / "report" / "plots").glob("*.png"))) == 4


MINILM_LINEARS = [
    f"layer{i}.{site}"
    for i in range(6)
    for site in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense", "output.dense")
]  # fmt: skip


def test_expert_load_keeps_36_layer_labels_apart():
    """Routed LoRA on every linear of MiniLM is 36 rows a panel: the panel grows with its rows, so no two layer
    labels overlap, at a legible size; four panels wrap onto two lines instead of shrinking into one."""
    stats = {"load_entropy": 0.69, "layers": {name: {"load": [0.6, 0.4]} for name in MINILM_LINEARS}}
    records = [
        _record("lora", seed, 0.8, task=task, routing={"strategy": strategy, "experts": 2}, routing_stats=stats)
        for task in ("sst2", "conll")
        for strategy in ("random", "hash")
        for seed in (1, 2)
    ]
    figure = plots.expert_load(records)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    panels = [ax for ax in figure.axes if ax.get_ylabel() == "layer" and ax.get_visible()]
    assert len(panels) == 4 and len({round(ax.get_position().y0, 3) for ax in panels}) == 2
    for ax in panels:
        labels = ax.get_yticklabels()
        assert [label.get_text() for label in labels] == MINILM_LINEARS and labels[0].get_fontsize() >= 8
        boxes = sorted((label.get_window_extent(renderer) for label in labels), key=lambda box: box.y0)
        assert all(low.y1 <= high.y0 for low, high in pairwise(boxes))
        assert min(box.x0 for box in boxes) >= 0  # inside the figure, not cut at its left edge


def test_a_pareto_front_of_one_row_is_drawn():
    """The cheapest row is also the best: the front is that one point, drawn (a ring), as the legend says."""
    records = [_record("lora", s, 0.85) for s in (1, 2)] + [_record("full", s, 0.80) for s in (1, 2)]
    figure = plots.pareto(leaderboards(records))
    (front,) = [line for line in figure.axes[0].get_lines() if line.get_label() == "Pareto front"]
    assert list(front.get_xdata()) == [10] and list(front.get_ydata()) == [pytest.approx(85.0)]
    assert front.get_marker() == "o" and front.get_markersize() > 0 and front.get_markeredgewidth() > 0


# ---------------------------------------------------------------------------------------------- check


def _run(tmp_path: Path, name: str, rows: dict[str, list[float]], seeds=(1, 2, 3), failed=()) -> Path:
    records = [
        _record(method, seed, value / 100, status="failed" if (method, seed) in failed else "done")
        for method, values in rows.items()
        for seed, value in zip(seeds, values, strict=True)
    ]
    _store(tmp_path / name, records)
    return tmp_path / name


REFERENCE = {"full": [80.0, 80.5, 79.5], "lora": [70.0, 71.0, 69.0]}


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    path = tmp_path / "baselines" / "fixture.json"
    result = bench("baseline", str(_run(tmp_path, "reference", REFERENCE)), "--to", str(path))
    assert result.returncode == 0, result.stderr
    saved = json.loads(path.read_text())
    assert saved["rule"] == {"false_alarm": 0.05, "min_tolerance": 0.5} and len(saved["rows"]) == 2
    assert saved["rows"][next(iter(saved["rows"]))]["units"] == ["1", "2", "3"]
    return path


def _check(run: Path, baseline: Path):
    return bench("check", str(run), "--baseline", str(baseline))


def test_check_flags_a_two_point_drop_at_three_seeds(tmp_path, baseline):
    same = _check(_run(tmp_path, "same", REFERENCE), baseline)
    assert same.returncode == 0, same.stdout + same.stderr
    dropped = _check(_run(tmp_path, "drop", {"full": [78.0, 78.5, 77.5], "lora": REFERENCE["lora"]}), baseline)
    assert dropped.returncode == 1
    (line,) = [row for row in dropped.stdout.splitlines() if "/full/" in row]
    # same seeds: paired; every seed dropped by exactly 2, so se = 0 and the tolerance is min_tolerance
    assert "| 80.00 " in line and "| 78.00 " in line and "| -2.00 " in line and "| 0.50 " in line
    assert "paired (df 2.0)" in line and "REGRESSED" in line
    assert "at level 0.05 / 2 = 0.0250 per row" in " ".join(dropped.stdout.split())


def test_check_passes_a_rerun_with_other_seeds_within_the_spread(tmp_path, baseline):
    rerun = _run(tmp_path, "rerun", {"full": [80.3, 79.6, 79.9], "lora": [70.4, 69.2, 70.9]}, seeds=(4, 5, 6))
    result = _check(rerun, baseline)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("| ok ") == 2 and result.stdout.count("Welch (df ") == 2
    # full: Welch se = sqrt(0.25/3 + 0.1233/3) = 0.3528, df = 3.59, t(1 - 0.025, 3.59) = 2.91: tolerance 1.03
    (line,) = [row for row in result.stdout.splitlines() if "/full/" in row]
    assert "| 1.03 " in line and "Welch (df 3.6)" in line


@pytest.mark.parametrize("paired", [True, False], ids=["same-seeds", "other-seeds"])
def test_check_rule_keeps_false_alarms_per_run_at_its_level_and_catches_big_drops(paired):
    """16 rows at 3 seeds, reruns drawn afresh: a night with no change flags any row in at most ~5 % of runs (the
    old 2-sigma rule: more than half); a 5-point drop at sd 0.5 is caught in most rows."""
    rule = CheckRule()
    any_row, _ = simulate(rule, [0.5] * 8 + [2.0] * 8, 3, 0.0, 1500, paired)
    assert any_row <= 0.05 + 3 * (0.05 * 0.95 / 1500) ** 0.5
    _, per_row = simulate(rule, [0.5] * 16, 3, 5.0, 300, paired)
    assert per_row >= (0.5 if paired else 0.9)


def test_check_flags_missing_and_failed_cells(tmp_path, baseline):
    missing = _check(_run(tmp_path, "missing", {"full": REFERENCE["full"]}), baseline)
    assert missing.returncode == 1 and "MISSING" in missing.stdout
    failed = _check(_run(tmp_path, "failed", REFERENCE, failed={("lora", 2)}), baseline)
    assert failed.returncode == 1 and "FAILED" in failed.stdout and "REGRESSED" not in failed.stdout


def test_a_re_search_that_chose_other_values_is_the_same_row(tmp_path):
    """The row is the search, not what it picked: the baseline's row is found again, not MISSING + new."""
    path = tmp_path / "baselines" / "searched.json"

    def searched(name: str, lr: float, r: int, scores: list[float]) -> Path:
        chosen = {"lr": lr, "method.r": r}
        records = [_record("lora", s, v / 100, search=chosen) for s, v in zip((1, 2, 3), scores, strict=True)]
        _store(tmp_path / name, records)
        return tmp_path / name

    untrained = _record("majority", 1, 0.5)  # a baseline method: no training settings in its row
    for name in ("before", "after"):
        _store(tmp_path / name, [untrained])
    assert bench("baseline", str(searched("before", 1e-3, 8, [80, 81, 79])), "--to", str(path)).returncode == 0
    result = _check(searched("after", 3e-3, 4, [80.5, 80.5, 79.5]), path)
    assert result.returncode == 0, result.stdout
    assert "| ok " in result.stdout and "MISSING" not in result.stdout and "| new " not in result.stdout


def test_few_shot_rows_pair_over_seed_and_split():
    """Two seeds × two splits are four cells of one row; the test sees all four, not one split per seed."""
    few = [
        _record("full", seed, 0.60 + 0.01 * seed + 0.02 * split, regime={"shots": 8, "split_seed": split})
        for seed in (1, 2)
        for split in (1, 2)
    ]
    base = [_record("full", seed, v) for seed, v in ((1, 0.80), (2, 0.805), (3, 0.795))]
    (table,) = leaderboards(few + base).values()
    row = table[table["regime"] != "full"].iloc[0]
    assert row["seeds"] == 4 and len(row["by_unit"]) == 4
    expected = stats.ttest_ind(list(row["by_unit"].values()), [80.0, 80.5, 79.5], equal_var=False).pvalue
    assert row["p"] == pytest.approx(expected)


@pytest.mark.parametrize("content", ["{", '{"suite": "x", "rows": {}}', "[]"])
def test_check_exits_2_on_a_malformed_baseline(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = _check(_run(tmp_path, "run", REFERENCE), path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: not a baseline file")


# ---------------------------------------------------------------------------------------------- the reading half

TRAINING_SIDE = ("torch", "transformers", "peft", "datasets", "optuna", "mlflow", "seqeval")
RUNNING_FOLDERS = tuple(f"harness.{folder}" for folder in ("suite", "run", "models", "tasks", "methods", "routing"))
# every module of the reading half (analysis/) and of the contract it reads (records/)
READING_MODULES = sorted(
    ".".join(path.relative_to(REPO).with_suffix("").parts)
    for folder in ("analysis", "records")
    for path in (REPO / "harness" / folder).glob("[!_]*.py")
)


def test_the_reading_half_imports_no_training_library():
    code = f"import sys, {', '.join(READING_MODULES)}; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(READING_MODULES) <= set(loaded)
    assert [m for m in loaded if m.split(".")[0] in TRAINING_SIDE or m.startswith(RUNNING_FOLDERS)] == []


def test_report_baseline_and_check_run_where_training_libraries_cannot_be_imported(tmp_path):
    """What nightly CI runs to compare numbers must work on a machine without torch: an import hook makes any
    import of a training-side module fail."""
    run = _run(tmp_path, "run", REFERENCE)
    block = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {TRAINING_SIDE!r} or name.startswith({RUNNING_FOLDERS!r}):\n"
        "            raise ImportError(f'{name} is on the training side')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from harness.cli import main\n"
        "main()\n"
    )
    for args in (
        ["report", str(run), "--to", str(tmp_path / "report")],
        ["baseline", str(run), "--to", str(tmp_path / "base.json")],
        ["check", str(run), "--baseline", str(tmp_path / "base.json")],
    ):
        result = subprocess.run([sys.executable, "-c", block, *args], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "| ok " in result.stdout


def test_a_record_that_does_not_match_the_schema_is_one_line_naming_file_and_field(tmp_path):
    store = _store(tmp_path / "run", [_record("full", 1, 0.8)])
    (path,) = store.cells.glob("*.json")
    good = json.loads(path.read_text())
    for change, field in (
        (lambda r: r["cost"].update(train_secs=1.0), "cost.train_secs: Extra inputs are not permitted"),
        (lambda r: r["metrics"]["test"].pop("accuracy"), "needs metrics.test.accuracy (its headline)"),
        (lambda r: r["row"].pop("unit"), "row.unit: Field required"),
        (lambda r: r.pop("schema_version"), "schema_version: 1, but this routebench reads records of schema 2"),
    ):
        broken = json.loads(json.dumps(good))
        change(broken)
        path.write_text(json.dumps(broken))
        result = bench("report", str(tmp_path / "run"), "--to", str(tmp_path / "report"))
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: {path}: ") and field in line, line


def test_bench_upgrade_rewrites_schema_1_records_as_they_would_be_written_now(tmp_path):
    """A schema-1 record had no row and an empty dict for no search; the upgrade rebuilds its cell from the
    config and must give the record `bench run` writes today. A config that does not hash to its record's
    config hash is refused, and the folder is left as it was."""
    records = [
        _record("lora", 1, 0.8, search={"lr": 1e-3}),
        _record("full", 2, 0.7, regime={"shots": 8, "split_seed": 3}),
    ]
    store = _store(tmp_path / "old", records)
    for path in store.cells.glob("*.json"):
        old = json.loads(path.read_text())
        del old["row"], old["schema_version"]
        old["search"] = old.get("search", {})
        path.write_text(json.dumps(old))
    refused = bench("report", str(tmp_path / "old"), "--to", str(tmp_path / "report"))
    assert refused.returncode == 2 and f"convert the folder with `bench upgrade {tmp_path / 'old'}`" in refused.stderr
    result = bench("upgrade", str(tmp_path / "old"))
    assert result.returncode == 0 and "2 records upgraded, 0 already current" in " ".join(result.stdout.split())
    assert sorted(store.records(), key=lambda r: r.config_hash) == sorted(records, key=lambda r: r.config_hash)

    path = next(store.cells.glob("*.json"))
    tampered = json.loads(path.read_text())
    del tampered["row"], tampered["schema_version"]
    tampered["config"]["seed"] = 99
    path.write_text(json.dumps(tampered))
    result = bench("upgrade", str(tmp_path / "old"))
    assert (
        result.returncode == 2 and f"{path}: cannot upgrade this schema-1 record (its config hashes to" in result.stderr
    )
    assert json.loads(path.read_text()) == tampered


def test_the_summary_names_the_rows_beyond_noise_and_only_those():
    """A row 10 points worse on every seed is named; one within the seeds' spread is not."""
    jitter = [0.004, -0.003, 0.001, -0.002, 0.003, -0.001, -0.002]
    records = [
        *[_record("full", s, 0.80 + j) for s, j in enumerate(jitter, 1)],
        *[_record("lora", s, 0.70 + j) for s, j in enumerate(jitter, 1)],
        *[_record("adapter", s, 0.799 - j) for s, j in enumerate(jitter, 1)],
    ]
    lines = summary(leaderboards(records)).splitlines()
    assert lines[0] == "sst2 best: full/none, accuracy 80.00 ± 0.27 (7 seeds)" and lines[1].endswith("(the best row)")
    assert lines[2].startswith("sst2 beyond noise (p Holm < 0.05): lora/none -10.00 (p < 0.001, Holm < 0.001); 1 other")


def test_profile_agreement_counts_rank_correlation_and_names_the_swaps_beyond_noise(tmp_path):
    """Default budget (3 seeds, sd 1 point each) against a full budget (1 seed). Means — default: full 80, lora 70,
    adapter 75, prompt tuning 74.9; full: 90, 88, 86, 86.5. Ranks differ for lora, adapter: Spearman
    1 − 6·8/(4·15) = 0.2; 3 concordant and 3 discordant pairs: Kendall 0. Swaps, noise √(1² + 1²) = 1.41: lora
    over adapter (+2.0) and over prompt tuning (+1.5) are beyond it, prompt tuning over adapter (+0.5) is not."""
    small_means = {"full": 0.80, "lora": 0.70, "adapter": 0.75, "prompt_tuning": 0.749}
    full_means = {"full": 0.90, "lora": 0.88, "adapter": 0.86, "prompt_tuning": 0.865}
    jitter = {1: 0.01, 2: 0.0, 3: -0.01}
    small = [_record(m, s, mean + j) for m, mean in small_means.items() for s, j in jitter.items()]
    full = [_record(m, 1, mean) for m, mean in full_means.items()]
    (found,) = agreement(leaderboards(small), leaderboards(full))
    assert (found.rows, found.spearman, found.kendall) == (4, pytest.approx(0.2), pytest.approx(0.0))
    shown = [(s.ahead, s.behind, round(s.full_gap, 2), round(s.small_gap, 2), s.matters) for s in found.swaps]
    assert shown == [
        ("lora/none", "adapter/none", 2.0, -5.0, True),
        ("lora/none", "prompt_tuning/none", 1.5, -4.9, True),
        ("prompt_tuning/none", "adapter/none", 0.5, -0.1, False),
    ]
    assert found.swaps[0].noise == pytest.approx(2**0.5)
    # the same comparison from the two reports' leaderboard.csv, for when the results folders are gone
    for name, records in (("small", small), ("full", full)):
        write_report(records, tmp_path / name)
    read = agreement(*(read_leaderboards(tmp_path / name / "leaderboard.csv") for name in ("small", "full")))
    assert read == [found]
    # the full profile's rows from two reports (suites sharing cells): a row both hold is read from the first
    write_report(full[:2], tmp_path / "full-a")
    write_report([*full[1:], _record("full", 1, 0.10)], tmp_path / "full-b")
    csvs = [str(tmp_path / name / "leaderboard.csv") for name in ("small", "full-a", "full-b")]
    script = subprocess.run(
        [sys.executable, "benchmarks/profile_agreement.py", *csvs], cwd=REPO, capture_output=True, text=True
    )
    assert script.returncode == 0, script.stderr
    assert "sst2: 4 rows ran at both budgets; Spearman 0.200, Kendall 0.000; 3 pairs swap" in script.stdout


def test_a_report_written_again_drops_the_plots_its_records_no_longer_draw(tmp_path):
    few = [_record("full", s, 0.6, regime={"shots": 4, "split_seed": s}) for s in (1, 2)]
    base = [_record("full", s, 0.8) for s in (1, 2)]
    write_report(base + few, tmp_path / "report")
    assert (tmp_path / "report" / "plots" / "few_shot_regimes.png").exists()
    write_report(base, tmp_path / "report")
    assert not (tmp_path / "report" / "plots" / "few_shot_regimes.png").exists()
