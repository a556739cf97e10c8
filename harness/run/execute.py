"""One cell, start to end: task data ► backbone ► method + routing ► train ► select on validation ► test once.
A method that does not train (a prompt baseline, a majority rule) goes from the data straight to the test."""

from __future__ import annotations

import dataclasses
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.methods import Baseline, Method, build_method, trainable_only
from harness.models.backbones import get_backbone
from harness.records.record import Record
from harness.routing import Routing, build_routing
from harness.run.beyond import Overfit, Scorer, attack_of, calibration_of, probe_scores, speed_of
from harness.run.device import Compute, describe_device
from harness.run.memory import PeakMemory
from harness.run.provenance import environment
from harness.run.train import Batches, Job, Observer, TrainResult, evaluate, train
from harness.suite.cell import Cell
from harness.tasks import families
from harness.tasks.base import TaskData, TaskFamily
from harness.tasks.data import prepare_task


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def build_model(cell: Cell, method: Method, labels: list[str], compute: Compute) -> tuple[torch.nn.Module, Any]:
    """The backbone with its task head, routed and prepared by the method, on the compute device; returns it
    and its routing."""
    family = families.get(cell.task.type)
    routing = build_routing(cell.routing)
    dense = get_backbone(cell.backbone).model(family.auto_model(), labels)
    return assemble(dense, method, routing, family).to(compute.device), routing


def assemble(dense: torch.nn.Module, method: Method, routing: Routing, family: TaskFamily) -> torch.nn.Module:
    """Method and routing on a dense model: a strategy that routes paths turns the method's paths into experts
    and the method says what trains; otherwise the method prepares the (possibly strategy-wrapped) model."""
    if routing.routes_paths:
        model = routing.apply(dense, method.paths())
        return trainable_only(model, method.trainable(model))
    return method.prepare(routing.apply(dense, None), family)


def _prepare(cell: Cell, method: Method | Baseline) -> tuple[TaskData, Any]:
    """The cell's data and tokenizer, with every RNG seeded by the cell's seed afterwards."""
    seed_everything(cell.seed)
    tokenizer = get_backbone(cell.backbone).tokenizer()
    data = prepare_task(
        cell.task,
        Path(cell.data_dir),
        tokenizer,
        max_length=cell.train.max_length,
        seed=cell.regime.data_seed(cell.seed),
        train_subset=cell.train.train_subset if method.trains else None,
        validation_subset=cell.train.validation_subset if method.trains else None,
        shots=cell.regime.shots,
    )
    seed_everything(cell.seed)  # the model's initialisation does not depend on how data loading used RNGs
    return data, tokenizer


def train_only(
    cell: Cell,
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    observers: Sequence[Observer] = (),
) -> TrainResult:
    """Train ``cell`` and score it on validation only (a search trial): the test split is dropped before
    training starts, so nothing a search selects can have seen it."""
    compute = Compute.named(device, cell.train.precision)
    method = build_method(cell.method)
    data, tokenizer = _prepare(cell, method)
    data = dataclasses.replace(data, test=None)
    family = families.get(cell.task.type)
    model, routing = build_model(cell, method, data.labels, compute)
    collate = family.collator(tokenizer)
    cfg = cell.train
    return train(Job(model, method, routing, data, family, collate, cfg, cell.seed, compute), progress, log, observers)


@dataclass
class CellOutcome:
    """Everything a cell produced, in memory, for the one writer (the driver) to store: the record, the test
    predictions and their per-example scores (what paired tests between cells compare), and the trained
    weights as files (name → bytes) when they were asked for."""

    record: Record
    predictions: list[Any] | None = None
    scores: list[Any] | None = None
    weights: dict[str, bytes] = field(default_factory=dict)
    generations: list[str] | None = None  # a prompt baseline's raw answers, beside the parsed predictions


def run_cell(
    cell: Cell,
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    save_weights: bool = False,
    observers: Sequence[Observer] = (),
) -> CellOutcome:
    """Train (or just predict) and evaluate ``cell`` on ``device`` (resolved here, in the process that runs the
    cell). With ``save_weights``, the outcome holds what ``Method.save`` writes; ``observers`` follow
    training."""
    started, env = time.perf_counter(), environment()  # the code as it was when the cell started
    compute = Compute.named(device, cell.train.precision)
    compute.reset_peak_memory()
    env["device"] = describe_device(compute.device)
    method = build_method(cell.method)
    with PeakMemory() as memory:
        data, tokenizer = _prepare(cell, method)
        if method.trains:
            outcome = _train_and_test(cell, method, data, tokenizer, compute, progress, log, save_weights, observers)
        else:
            outcome = _predict(cell, method, data, compute, progress)
    metrics, predictions, extra = outcome
    weights, generations = extra.pop("weights", {}), extra.pop("generations", None)
    family = families.get(cell.task.type)
    record = cell.record(
        "done",
        metrics
        | {
            "headline": family.headline,
            "test_source": data.test_source,
            "sizes": {split: len(getattr(data, split).gold) for split in ("train", "validation", "test")},
            "carve_removed": data.carve_removed,
        },
        env | {"data_fingerprint": data.fingerprint},
        history=extra.pop("history", []),
        routing_stats=extra.pop("routing_stats", {}),
        cost=extra
        | {
            "wall_seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mb": round(memory.peak_mb, 1),
            "torch_threads": torch.get_num_threads(),
        }
        | compute.peak_memory_mb(),
    )
    scores = family.example_scores(data.test.gold, predictions)
    return CellOutcome(record, predictions, scores, weights, generations)


def _train_and_test(
    cell: Cell,
    method: Method,
    data: TaskData,
    tokenizer: Any,
    compute: Compute,
    progress: bool,
    log: Callable[[str], None],
    save_weights: bool,
    observers: Sequence[Observer],
) -> tuple[dict, list[Any], dict]:
    family = families.get(cell.task.type)
    model, routing = build_model(cell, method, data.labels, compute)
    collate = family.collator(tokenizer)
    cfg = cell.train
    scorer = Scorer(model, cell.task, data, tokenizer, collate, compute, cfg.eval_batch_size, cfg.max_length)
    overfit = Overfit(scorer, cell.seed) if cell.evaluate.overfit else None
    job = Job(model, method, routing, data, family, collate, cfg, cell.seed, compute)
    result = train(job, progress, log, observers, at_end=overfit.at_end if overfit else None)
    test = Batches(data.test, family, collate, compute)
    test_metrics, predictions, outputs = evaluate(model, test, family, data.labels, cfg.eval_batch_size, True)
    measures = calibration_of(outputs)
    measures |= overfit.measures(result.validation[family.headline]) if overfit else {}
    measures |= probe_scores(cell.evaluate.probes, scorer, 100 * test_metrics[family.headline])
    measures |= attack_of(cell.evaluate.attack, scorer, predictions) if cell.evaluate.attack else {}
    weights = _saved(method, model) if save_weights else {}
    trainable, total = count_parameters(model)
    metrics = {
        "best_epoch": result.best_epoch,
        "best_step": result.best_step,
        "converged": result.converged,
        "validation": result.validation,
        "test": test_metrics,
        "measures": measures,
    }
    cost = {
        "trainable_params": trainable,
        "total_params": total,
        "train_seconds": round(result.train_seconds, 2),
        "test_examples_per_second": speed_of(outputs),
        "steps": result.steps,
        "tokens_per_second": round(result.real_tokens / max(result.train_seconds, 1e-9), 1),
        "padding_fraction": round(1 - result.real_tokens / max(result.padded_tokens, 1), 4),
    }
    extra = {"history": result.history, "routing_stats": routing.telemetry(), "weights": weights}
    return metrics, predictions, cost | extra


def _saved(method: Method, model: torch.nn.Module) -> dict[str, bytes]:
    """The files ``method.save`` writes, read back into memory: the process that ran the cell may not share a
    file system with the one that stores its results."""
    with tempfile.TemporaryDirectory() as tmp:
        method.save(model, Path(tmp))
        return {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}


def _predict(
    cell: Cell, method: Baseline, data: TaskData, compute: Compute, progress: bool
) -> tuple[dict, list[Any], dict]:
    """A method without training: test predictions only (nothing is selected, so validation is not run)."""
    family = families.get(cell.task.type)
    total = method.total_params(compute.device)  # loads the LM first, so predict_seconds is prediction only
    started = time.perf_counter()
    with compute.autocast():  # the suite's precision, as for training
        predicted = method.predict(data, cell.task.type, "test", cell.seed, compute.device, progress)
    cost = {
        "trainable_params": 0,
        "total_params": total,
        "train_seconds": 0.0,
        "predict_seconds": round(time.perf_counter() - started, 2),
    }
    test = family.score(data.test.gold, predicted.values) | predicted.metrics
    return {"validation": {}, "test": test}, predicted.values, cost | {"generations": predicted.generations}


def failed_record(cell: Cell, error: BaseException | str) -> Record:
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    headline = families.get(cell.task.type).headline
    return cell.record("failed", {"headline": headline}, environment(), error=message)
