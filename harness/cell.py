"""One cell, start to end: task data ► backbone ► method + routing ► train ► select on validation ► test once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.memory import PeakMemory
from harness.methods import build_method
from harness.models import get_backbone
from harness.results import Record, environment
from harness.routing import build_routing
from harness.suite import Cell
from harness.tasks import families
from harness.tasks.data import prepare_task
from harness.train import Batches, evaluate, train


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def run_cell(
    cell: Cell, progress: bool = True, log: Callable[[str], None] = lambda _: None
) -> tuple[Record, list[Any]]:
    """Train and evaluate ``cell``; returns its record and its test predictions."""
    started, env = time.perf_counter(), environment()  # the code as it was when the cell started
    with PeakMemory() as memory:
        seed_everything(cell.seed)
        family = families.get(cell.task.type)
        backbone = get_backbone(cell.backbone)
        tokenizer = backbone.tokenizer()
        data = prepare_task(
            cell.task,
            Path(cell.data_dir),
            tokenizer,
            max_length=cell.train.max_length,
            seed=cell.seed,
            train_subset=cell.train.train_subset,
            validation_subset=cell.train.validation_subset,
        )
        seed_everything(cell.seed)  # the model's initialisation does not depend on how data loading used RNGs
        method = build_method(cell.method)
        routing = build_routing(cell.routing)
        dense = backbone.model(family.auto_model(), data.labels)
        model = method.prepare(routing.apply(dense, cell.method.name))
        collate = family.collator(tokenizer)

        result = train(model, method, routing, data, family, collate, cell.train, cell.seed, progress, log)
        test_batches = Batches(data.test, family, collate)
        test_metrics, predictions = evaluate(model, test_batches, family, data.labels, cell.train.eval_batch_size)
    trainable, total = count_parameters(model)
    record = Record(
        suite=cell.suite,
        config_hash=cell.config_hash,
        status="done",
        label=cell.label,
        config=cell.hashed_fields(),
        metrics={
            "headline": family.headline,
            "best_epoch": result.best_epoch,
            "validation": result.validation,
            "test": test_metrics,
            "test_source": data.test_source,
            "sizes": {split: len(getattr(data, split).gold) for split in ("train", "validation", "test")},
        },
        history=result.history,
        routing_stats=routing.telemetry(),
        cost={
            "trainable_params": trainable,
            "total_params": total,
            "train_seconds": round(result.train_seconds, 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "steps": result.steps,
            "tokens_per_second": round(result.real_tokens / max(result.train_seconds, 1e-9), 1),
            "padding_fraction": round(1 - result.real_tokens / max(result.padded_tokens, 1), 4),
            "peak_rss_mb": round(memory.peak_mb, 1),
            "torch_threads": torch.get_num_threads(),
        },
        env=env | {"data_fingerprint": data.fingerprint},
    )
    return record, predictions


def failed_record(cell: Cell, error: BaseException) -> Record:
    return Record(
        suite=cell.suite,
        config_hash=cell.config_hash,
        status="failed",
        label=cell.label,
        config=cell.hashed_fields(),
        metrics={"headline": families.get(cell.task.type).headline},
        env=environment(),
        error=f"{type(error).__name__}: {error}",
    )
