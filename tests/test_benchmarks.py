"""The benchmark scripts that docs/performance.md quotes still run: each wraps the functions it times by name, so
a renamed function in the training loop would otherwise break it silently until someone measures again."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def test_routed_cell_benchmark_breaks_a_routed_cell_into_phases_on_the_tiny_backbone():
    result = subprocess.run(
        [sys.executable, "benchmarks/routed_cell.py", "--suite", "suites/routing.yaml", "--strategies", "random",
         "switch", "--precisions", "bf16", "--train-subset", "64", "--epochs", "1", "--device", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {line[:32].strip(): line[32:].split() for line in result.stdout.splitlines() if line[32:33] == " "}
    for phase in ("forward", "router", "dispatch + experts + combine", "backward", "optimizer step", "test scoring"):
        seconds, ratios = rows[phase][:3], rows[phase][3:]
        assert all(value.endswith("s") for value in seconds) and all(r.endswith("x") or r == "-" for r in ratios)
    assert rows["dispatch + experts + combine"][0] == "0.00s"  # the dense cell dispatches nothing
    assert float(rows["dispatch + experts + combine"][1][:-1]) > 0
    assert float(rows["router"][2][:-1]) > 0  # Switch's learned router runs
    assert "random  : train" in result.stdout and "switch  : train" in result.stdout


def test_beyond_cost_benchmark_times_probes_attack_and_gap_against_the_rest_of_the_cell(write):
    suite = write(
        "tiny-claims.yaml",
        """
        name: tiny-claims
        tasks: [sst2]
        backbones: [tiny-bert]
        seeds: [1]
        evaluate: {overfit: true, probes: [{kind: typo, rate: 0.1}], attack: {examples: 2}}
        train: {epochs: 1, batch_size: 16, lr: 1.0e-3, max_length: 32, train_subset: 64, validation_subset: 32}
        """,
    )
    result = subprocess.run(
        [sys.executable, "benchmarks/beyond_cost.py", "--suite", str(suite), "--only", "*", "--device", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("sst2/")]
    # the rest of the cell, probes, attack, gap: each phase ran ('-' marks one that never did); a tiny model's gap
    # scoring can take under 5 ms, so a time of 0.00 s is no failure
    seconds = [float(part[:-1]) for part in row.split() if part.endswith("s") and part[:-1].replace(".", "").isdigit()]
    assert len(seconds) == 4 and " - " not in row and seconds[0] > 0
    assert row.endswith("%") and "attack.success_rate" in result.stdout
