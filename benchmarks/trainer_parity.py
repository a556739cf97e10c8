"""Parity and speed against the standard recipe: transformers.Trainer + DataCollatorForTokenClassification.

Trains one cell of a suite twice in this process — with the harness (length-grouped dynamic batches) and
with ``transformers.Trainer`` (random batches, its default) — on the same data, initial weights,
hyperparameters and metric code, then prints both test F1 scores, the padding fraction of each, and the
harness's wall time as a ratio to Trainer's.

    .venv/bin/python benchmarks/trainer_parity.py --suite suites/ner.yaml --profile default --seed 1
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from harness.methods import build_method
from harness.models.backbones import get_backbone
from harness.run.execute import run_cell, seed_everything
from harness.suite.expand import expand, load_suite
from harness.tasks import families
from harness.tasks.data import prepare_task


class CountingTrainer(Trainer):
    """Trainer that counts real and padded tokens of every training batch it sees."""

    real_tokens = 0
    padded_tokens = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.real_tokens += int(inputs["attention_mask"].sum())
            self.padded_tokens += inputs["attention_mask"].numel()
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def run_trainer(cell, workdir: Path) -> dict:
    """Everything the harness's cell does (data, model, train, select, test) timed the same way."""
    started = time.perf_counter()
    family = families.get(cell.task.type)
    backbone = get_backbone(cell.backbone)
    tokenizer = backbone.tokenizer()
    cfg = cell.train
    data = prepare_task(
        cell.task,
        Path(cell.data_dir),
        tokenizer,
        max_length=cfg.max_length,
        seed=cell.seed,
        train_subset=cfg.train_subset,
        validation_subset=cfg.validation_subset,
    )
    seed_everything(cell.seed)
    model = build_method(cell.method).prepare(backbone.model(family.auto_model(), data.labels))
    columns = [c for c in family.model_columns if c in data.train.inputs.column_names]

    def score(split):
        def compute(prediction) -> dict:
            argmax = torch.from_numpy(np.asarray(prediction.predictions).argmax(-1))
            return family.score(split.gold, family.decode(list(argmax), split.inputs, split.gold, data.labels))

        return compute

    steps = math.ceil(len(data.train.gold) / cfg.batch_size) * cfg.epochs
    args = TrainingArguments(
        output_dir=str(workdir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=int(cfg.warmup_ratio * steps),
        num_train_epochs=cfg.epochs,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=family.headline,
        greater_is_better=True,
        use_cpu=True,
        report_to="none",
        seed=cell.seed,
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = CountingTrainer(
        model=model,
        args=args,
        data_collator=family.collator(tokenizer),
        train_dataset=data.train.inputs.select_columns(columns),
        eval_dataset=data.validation.inputs.select_columns(columns),
        compute_metrics=score(data.validation),
    )
    trainer.train()
    trainer.compute_metrics = score(data.test)
    test = trainer.evaluate(data.test.inputs.select_columns(columns), metric_key_prefix="test")
    wall = time.perf_counter() - started
    return {
        "test": test[f"test_{family.headline}"],
        "wall": wall,
        "padding": 1 - trainer.real_tokens / trainer.padded_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=Path("suites/ner.yaml"))
    parser.add_argument("--profile", default=None, help="default: the suite's `default` profile if any")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cells = [c for c in expand(load_suite(args.suite), args.suite, args.profile) if c.seed == args.seed]
    cell = cells[0]
    print(f"cell: {cell.label}, profile {args.profile}: {cell.train.model_dump()}", flush=True)

    # Warm-up outside both timings: fill the tokenisation cache and import everything once.
    cfg = cell.train
    prepare_task(
        cell.task,
        Path(cell.data_dir),
        get_backbone(cell.backbone).tokenizer(),
        max_length=cfg.max_length,
        seed=cell.seed,
        train_subset=cfg.train_subset,
        validation_subset=cfg.validation_subset,
    )

    started = time.perf_counter()
    record, _, _ = run_cell(cell, progress=False)
    harness_wall = time.perf_counter() - started
    headline = record.metrics.headline
    harness = {
        "test": record.metrics.test[headline],
        "wall": harness_wall,
        "padding": record.cost.padding_fraction,
    }
    print(
        f"harness: test {headline} {harness['test']:.4f}, wall {harness_wall:.0f}s, padding {harness['padding']:.1%}",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as workdir:
        trainer = run_trainer(cell, Path(workdir))
    print(
        f"trainer: test {headline} {trainer['test']:.4f}, wall {trainer['wall']:.0f}s, padding {trainer['padding']:.1%}"
    )
    print(f"\n{headline} difference (harness - trainer): {100 * (harness['test'] - trainer['test']):+.2f} points")
    print(f"wall-time ratio harness / trainer: {harness['wall'] / trainer['wall']:.2f}x (target <= 0.5x)")


if __name__ == "__main__":
    main()
