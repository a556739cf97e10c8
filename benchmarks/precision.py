"""What bf16 autocast gains and costs on a whole cell: the ner suite's dense default cell in fp32 and in bf16.

For each seed the two precisions run back to back in this one process (interleaved, so drift in the machine's
load hits both alike), on the device ``--device`` names. Prints per precision the test F1 (mean ± sd over the
seeds), training seconds, wall seconds and training tokens/s, then bf16's time as a ratio of fp32's.

    .venv/bin/python benchmarks/precision.py [--suite suites/ner.yaml] [--seeds 1 2 3] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from harness.run.execute import run_cell
from harness.suite.expand import expand, load_suite

PRECISIONS = ("fp32", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=Path("suites/ner.yaml"))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    dense = [
        c
        for c in expand(load_suite(args.suite), args.suite, args.profile)
        if c.method.name == "full" and c.routing.strategy == "none" and c.regime == "full" and c.seed in args.seeds
    ]
    if not dense:
        raise SystemExit(f"{args.suite}: no dense full fine-tuning cell with seeds {args.seeds}")
    print(f"cell {dense[0].group_label}, seeds {[c.seed for c in dense]}, train {dense[0].train.model_dump()}")
    rows: dict[str, list[dict]] = {p: [] for p in PRECISIONS}
    for cell in dense:
        for precision in PRECISIONS:
            arm = cell.model_copy(update={"train": cell.train.model_copy(update={"precision": precision})})
            record = run_cell(arm, args.device, progress=False).record
            rows[precision].append({"f1": 100 * record.metrics.test["f1"]} | record.cost.model_dump(exclude_none=True))
            print(
                f"seed {cell.seed} {precision}: test F1 {rows[precision][-1]['f1']:.2f}, "
                f"train {record.cost.train_seconds:.0f} s, wall {record.cost.wall_seconds:.0f} s, "
                f"{record.cost.tokens_per_second:.0f} tokens/s on {record.env['device']}"
            )

    def total(precision: str, key: str) -> float:
        return sum(r[key] for r in rows[precision])

    print(f"\n{'precision':<10} {'test F1':>14} {'train s':>8} {'wall s':>8} {'tokens/s':>9}")
    for precision in PRECISIONS:
        f1 = [r["f1"] for r in rows[precision]]
        sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
        tokens = statistics.mean(r["tokens_per_second"] for r in rows[precision])
        print(
            f"{precision:<10} {statistics.mean(f1):>7.2f} ± {sd:<4.2f} {total(precision, 'train_seconds'):>8.0f} "
            f"{total(precision, 'wall_seconds'):>8.0f} {tokens:>9.0f}"
        )
    gap = statistics.mean(r["f1"] for r in rows["bf16"]) - statistics.mean(r["f1"] for r in rows["fp32"])
    print(
        f"\nbf16 / fp32: training time {total('bf16', 'train_seconds') / total('fp32', 'train_seconds'):.2f}×, "
        f"cell wall time {total('bf16', 'wall_seconds') / total('fp32', 'wall_seconds'):.2f}×; "
        f"test F1 {gap:+.2f} points"
    )


if __name__ == "__main__":
    main()
