"""What a local Dask cluster gains: a suite run serially in this process (torch on every core) against the same
suite on N single-thread workers (``bench run --workers N``), one after the other in this one run, each into a
fresh results folder with MLflow tracking on (as a user runs it).

Prints both wall times and their ratio, and the driver's own CPU time per cell in the parallel run (records,
predictions, MLflow replay, scheduling: everything this process does while the workers train), from which
the number of workers one driver can feed follows: a cell's worker time divided by the driver's time per cell.

    .venv/bin/python benchmarks/parallel.py --suite suites/nightly.yaml --seed 1 [--workers 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from harness.records.store import ResultStore
from harness.run.runner import RunOptions, run_cells
from harness.run.tracking import Tracker, default_uri
from harness.suite.expand import expand, load_suite


def _run(cells: list, out: Path, options: RunOptions) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds for one ``bench run`` of ``cells`` into ``out``."""
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_cells(cells, out, options, log=lambda _: None, tracker=Tracker(default_uri(out), out))
    if summary.failed:
        raise SystemExit(f"{summary.failed} cells failed in {out}")
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=Path("suites/nightly.yaml"))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--seed", type=int, nargs="*", help="only these seeds of the suite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (workers: one GPU each)")
    args = parser.parse_args()

    cells = [
        c for c in expand(load_suite(args.suite), args.suite, args.profile) if not args.seed or c.seed in args.seed
    ]
    threads = torch.get_num_threads()
    print(f"{args.suite}: {len(cells)} cells; serial with {threads} torch threads vs {args.workers} workers")
    with tempfile.TemporaryDirectory() as tmp:
        serial_wall, _ = _run(cells, Path(tmp) / "serial", RunOptions(progress=False, device=args.device))
        print(f"serial:   {serial_wall:.0f} s")
        parallel = Path(tmp) / "parallel"
        parallel_wall, driver_cpu = _run(
            cells,
            parallel,
            RunOptions(progress=False, device=args.device, workers=args.workers),
        )
        print(f"parallel: {parallel_wall:.0f} s on {args.workers} workers")
        cell_wall = statistics.mean(r.cost.wall_seconds for r in ResultStore(parallel).records())

    per_cell = driver_cpu / len(cells)
    print(
        f"\nparallel / serial wall time: {parallel_wall / serial_wall:.2f}× ({serial_wall / parallel_wall:.2f}× faster)"
    )
    print(
        f"driver CPU per cell: {1000 * per_cell:.0f} ms; a cell's mean wall time on a worker: {cell_wall:.1f} s "
        f"-> one driver keeps about {cell_wall / per_cell:.0f} workers busy with cells like these"
    )


if __name__ == "__main__":
    main()
