"""Adaptive seeds (``seeds: {min, max}``): every row runs seeds 1..min; then, one seed at a time, only the rows in a
comparison that ``findings`` still calls undecided run the next seed, until none is undecided or max is reached.

Each step reads the records (only those of this run's cells), so a killed run, started again, replays the same
decisions from the same records and goes on where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.analysis.findings import open_keys
from harness.analysis.leaderboard import leaderboards
from harness.records.settings import ReportSettings
from harness.records.store import ResultStore
from harness.run.runner import RunSummary
from harness.suite.cell import Cell


def run_adaptive(
    cells: list[Cell],
    settings: ReportSettings,
    store: ResultStore,
    run: Callable[[list[Cell]], RunSummary],
    log: Callable[[str], None] = lambda _: None,
) -> RunSummary:
    """Run ``cells`` (every seed up to the plan's max) seed by seed as ``settings.plan`` says; ``run`` runs a batch."""
    plan = settings.plan
    assert plan is not None, "run_adaptive needs a seed plan"
    seed, batch, total = plan.min, [c for c in cells if c.seed <= plan.min], RunSummary()
    while batch:
        done = run(batch)
        total = RunSummary(
            total.ran + done.ran, total.skipped + done.skipped, total.failed + done.failed, total.hashes + done.hashes
        )
        if seed == plan.max:
            break
        ran = set(total.hashes)
        tables = leaderboards([r for r in store.records() if r.config_hash in ran], settings)
        following = [c for c in cells if c.seed == seed + 1]
        wanted = open_keys(tables, settings, {c.row().key for c in following})
        seed, batch = seed + 1, [c for c in following if c.row().key in wanted]
        log(f"seed {seed}: {len(batch)} cells of the rows whose comparisons are undecided")
    return total
