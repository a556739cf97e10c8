"""Where a routed cell's time goes, against the dense cell of the same suite: one run, same seed, same data.

For each precision (fp32 and bf16 by default) it runs the dense full fine-tuning cell of the suite's profile and
one routed cell per strategy (random + merge, hash, Switch by default: the rows of the ner first run), one after
the other, each in a fresh process (so that no cell inherits kernel caches or heap from the cells before it), and
times each phase of each cell by wrapping the functions that do it: loading and tokenising the data,
building the model, the training loop's forward passes (inside them: the routers, dispatch + experts + combine,
load telemetry), backward passes, gradient clipping, optimizer steps, the rest of the loop (batching, the
best-state copy, zeroing gradients), validation and test scoring. Prints seconds per phase and the routed/dense
ratio per phase, then the cells' training seconds, peak resident memory and scores. ``--ops N`` adds torch's
profiler table of the N operators with the most self time in each cell's training (a slower run: the profiler
records every op).

    .venv/bin/python benchmarks/routed_cell.py [--suite suites/ner.yaml] [--profile default] [--seed 1]
        [--strategies random hash switch] [--precisions fp32 bf16] [--device auto] [--train-subset 3000]
        [--epochs 2] [--ops 0]

The defaults time 188 steps of the ner suite (3,000 sentences, 2 epochs): the suite's own budget trains until
converged, a different number of steps per cell, and the cells must take the same steps to compare.

Run it alone on an idle machine: another torch process on the same cores distorts every phase.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import time
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from harness.routing.moe import LoadStats
from harness.run import execute, train
from harness.run.execute import run_cell
from harness.suite.cell import Cell
from harness.suite.expand import expand, load_suite

PHASES = (
    ("load data", "data"),
    ("build model", "build"),
    ("forward", "forward"),
    ("  router", "router"),
    ("  dispatch + experts + combine", "dispatch"),
    ("  load telemetry", "telemetry"),
    ("backward", "backward"),
    ("clip gradients", "clip"),
    ("optimizer step", "step"),
    ("rest of the loop", "loop"),
    ("validation", "validation"),
    ("test scoring", "test"),
    ("rest of the cell", "cell"),
)


class Clock:
    """Wall seconds per phase; ``timed`` wraps a callable so that each call adds to its phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, phase: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started

        return wrapper


@contextlib.contextmanager
def patched(clock: Clock) -> Iterator[None]:
    """Every phase's function wrapped for the duration of one cell; the routing's and optimizer's methods are
    wrapped on the instances the cell builds."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, phase: str) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, clock.timed(phase, getattr(owner, name)))

    build_model = execute.build_model

    def build_and_wrap(*args: Any, **kwargs: Any) -> Any:
        model, routing = build_model(*args, **kwargs)
        routing.loss = clock.timed("forward", routing.loss)
        for block in getattr(routing, "blocks", {}).values():
            block.router.forward = clock.timed("router", block.router.forward)
        return model, routing

    optimizer = train._optimizer

    def optimizer_and_wrap(*args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        built = optimizer(*args, **kwargs)
        # a bound method: the LR scheduler wraps optimizer.step and reads its __func__
        built.step = types.MethodType(clock.timed("step", type(built).step), built)
        return built

    saved += [(execute, "build_model", build_model), (train, "_optimizer", optimizer)]
    execute.build_model = clock.timed("build", build_and_wrap)
    train._optimizer = optimizer_and_wrap
    patch(execute, "_prepare", "data")
    patch(execute, "evaluate", "test")
    patch(train, "evaluate", "validation")
    patch(train, "_epoch", "epochs")
    patch(torch.Tensor, "backward", "backward")
    patch(torch.nn.utils, "clip_grad_norm_", "clip")
    patch(LoadStats, "update", "telemetry")
    from harness.routing import moe

    patch(moe, "dispatch", "dispatch")
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def timed_cell(cell: Cell, device: str, patcher: Callable[[Clock], Any]) -> tuple[dict[str, float], float, Any]:
    """Run ``cell`` with ``patcher(clock)`` wrapping what it times: seconds per phase, total wall seconds, record."""
    clock = Clock()
    started = time.perf_counter()
    with patcher(clock):
        record = run_cell(cell, device, progress=False).record
    return dict(clock.seconds), time.perf_counter() - started, record


def measure(cell: Cell, device: str) -> tuple[dict[str, float], Any]:
    s, wall, record = timed_cell(cell, device, patched)
    # validation runs inside the epochs (every eval_every steps or at each epoch's end)
    s["loop"] = s.pop("epochs") - s["forward"] - s["backward"] - s["clip"] - s["step"] - s["validation"]
    s["cell"] = wall - sum(s[k] for k in ("data", "build", "validation", "test", "loop"))
    s["cell"] -= s["forward"] + s["backward"] + s["clip"] + s["step"]
    return dict(s), record


def run_alone(fn: Callable, cell: Cell, device: str) -> Any:
    """``fn(cell, device)`` in a new process: no cell starts with what the cells before it left in the process —
    oneDNN's cache of GEMM kernels (one per matrix shape, kept for the process's life, and most of a routed cell's
    memory above dense when it ran after the others) and a warm heap — so each cell's time and peak memory are its
    own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, cell, device).result()


def op_table(cell: Cell, device: str, rows: int) -> str:
    """torch's profiler over the cell's training (no test scoring): the ops with the most self time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        execute.train_only(cell, device, progress=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)


def with_train(cell: Cell, **fields: Any) -> Cell:
    """The cell with these training fields, and no early stopping: the dense and the routed cell take the same
    steps, so their times compare step for step."""
    return cell.model_copy(update={"train": cell.train.model_copy(update={"patience": None} | fields)})


def pick(cells: list[Cell], strategy: str, seed: int) -> Cell:
    found = [c for c in cells if c.method.name == "full" and c.routing.strategy == strategy and c.seed == seed]
    found = [c for c in found if c.regime.shots is None]
    if not found:
        raise SystemExit(f"no full fine-tuning cell with routing {strategy!r} and seed {seed} in this profile")
    return found[0]


def print_table(precision: str, labels: list[str], phases: list[dict[str, float]]) -> None:
    head = f"{'phase (' + precision + ')':<32}" + "".join(f"{label:>16}" for label in labels)
    print(head + "".join(f"{label + '/dense':>14}" for label in labels[1:]))
    for name, key in (*PHASES, ("total", "total")):
        values = [
            p.get(key, 0.0) if key != "total" else sum(p[k] for n, k in PHASES if k in p and n[0] != " ")
            for p in phases
        ]
        ratios = [f"{v / values[0]:>13.2f}x" if values[0] > 0.005 else f"{'-':>14}" for v in values[1:]]
        print(f"{name:<32}" + "".join(f"{v:>15.2f}s" for v in values) + "".join(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=Path("suites/ner.yaml"))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strategies", nargs="+", default=["random", "hash", "switch"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-subset", type=int, default=3000, help="training sentences (0: the profile's)")
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs, every one taken: early stopping is off (0: the profile's cap)"
    )
    parser.add_argument("--ops", type=int, default=0, help="also print the profiler's top N ops per cell")
    args = parser.parse_args()

    cells = expand(load_suite(args.suite), args.suite, args.profile)
    overrides = {k: v for k, v in (("train_subset", args.train_subset), ("epochs", args.epochs)) if v}
    arms = [pick(cells, s, args.seed) for s in ("none", *args.strategies)]
    labels = ["dense", *args.strategies]
    print(f"suite {args.suite}, profile {args.profile or 'default'}, seed {args.seed}, overrides {overrides or '-'}")
    for precision in args.precisions:
        phases, records = [], []
        for arm in arms:
            cell = with_train(arm, precision=precision, **overrides)
            seconds, record = run_alone(measure, cell, args.device)
            phases.append(seconds)
            records.append(record)
        print(f"\n{records[0].env['device']}, {torch.get_num_threads()} threads")
        print_table(precision, labels, phases)
        for label, record in zip(labels, records, strict=True):
            headline = record.metrics.headline
            print(
                f"{label:<8}: train {record.cost.train_seconds:.1f} s "
                f"({record.cost.train_seconds / records[0].cost.train_seconds:.2f}x dense), "
                f"peak RSS {record.cost.peak_rss_mb:.0f} MB "
                f"({record.cost.peak_rss_mb / records[0].cost.peak_rss_mb:.2f}x), "
                f"test {headline} {100 * record.metrics.test[headline]:.2f}, steps {record.cost.steps}"
            )
        for label, arm in zip(labels, arms, strict=True) if args.ops else ():
            print(f"\n{label} ({precision}): top {args.ops} ops by self time, training only")
            print(op_table(with_train(arm, precision=precision, **overrides), args.device, args.ops))


if __name__ == "__main__":
    main()
