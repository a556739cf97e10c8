"""What the measures beyond the clean score add to a cell: runs cells of a suite that has an ``evaluate`` block (by
default suites/claims.yaml, seed 1, its default profile), each in a fresh process, and times what its evaluate
block asks for — the robustness probes, the attack, the train–validation gap — against the rest of the same cell
(data, model, training, validation, the clean test pass with calibration and speed). The ratio is the share those
measures add to the cell, measured in the same run; the goal is at most 30 %.

    .venv/bin/python benchmarks/beyond_cost.py [--suite suites/claims.yaml] [--profile default] [--seed 1]
        [--only 'conll2003/*/full/none/full/*' ...] [--device auto]

Run it alone on an idle machine: another torch process on the same cores distorts every phase.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from routed_cell import Clock, run_alone, timed_cell

from harness.run import beyond, execute
from harness.suite.cell import Cell
from harness.suite.expand import expand, load_suite

MEASURES = (("probes", "probes"), ("attack", "attack"), ("train–validation gap", "overfit"))
DEFAULT_CELLS = ("conll2003/*/full/none/full/seed1", "sst2/*/full/none/full/seed1", "sst2/*/full/random/full/seed1")


@contextlib.contextmanager
def patched(clock: Clock) -> Iterator[None]:
    saved = [
        (execute, "probe_scores", "probes"),
        (execute, "attack_of", "attack"),
        (beyond.Overfit, "at_end", "overfit"),
        (beyond.Overfit, "measures", "overfit"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in saved]
    for owner, name, phase in saved:
        setattr(owner, name, clock.timed(phase, getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def measure(cell: Cell, device: str) -> tuple[dict[str, float], Any]:
    seconds, wall, record = timed_cell(cell, device, patched)
    seconds["cell"] = wall - sum(seconds.values())
    return seconds, record


def _share(seconds: float | None, rest: float) -> str:
    """A phase's seconds and share of the rest of the cell; '-' for a phase the cell never ran."""
    return f"{'-':>23}" if seconds is None else f"{seconds:>14.2f}s ({seconds / rest:>4.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=Path("suites/claims.yaml"))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=list(DEFAULT_CELLS), help="cell label globs")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    cells = [
        c
        for c in expand(load_suite(args.suite), args.suite, args.profile)
        if c.seed == args.seed and c.trains and any(fnmatch(c.label, p) for p in args.only)
    ]
    if not cells:
        raise SystemExit(f"no trained cell of seed {args.seed} matches {args.only}")
    print(f"suite {args.suite}, profile {args.profile or 'default'}, seed {args.seed}")
    print(f"{'cell':<48}{'cell without':>14}" + "".join(f"{name:>22}" for name, _ in MEASURES) + f"{'added':>10}")
    for cell in cells:
        seconds, record = run_alone(measure, cell, args.device)
        added, rest = sum(seconds.get(key, 0.0) for _, key in MEASURES), seconds["cell"]
        parts = "".join(_share(seconds.get(k), rest) for _, k in MEASURES)
        name = f"{cell.label} ({record.row.inference})" if record.row.inference != "-" else cell.label
        print(f"{name:<48}{rest:>13.1f}s{parts}{added / rest:>10.0%}")
        shown = {k: round(v, 2) for k, v in sorted(record.measures.items())}
        print(f"    test {record.metrics.headline} {100 * record.test_score:.2f}; {shown}")


if __name__ == "__main__":
    main()
