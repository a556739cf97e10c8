"""One training loop for every arm: AdamW, warm-up then linear decay over the cap (or constant), validation per
epoch or every ``eval_every`` steps, the best state kept, early stopping on ``patience``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

from harness.core.errors import CellFailed
from harness.methods import Method
from harness.routing import Routing
from harness.run.batching import length_grouped_batches, random_batches, sorted_batches
from harness.run.device import Compute
from harness.tasks.base import Split, TaskData, TaskFamily


class Batches:
    """A split as model-ready rows; yields padded tensor batches on the compute device in a given index order."""

    def __init__(self, split: Split, family: TaskFamily, collate: Any, compute: Compute) -> None:
        self.split, self.family = split, family
        columns = [c for c in family.model_columns if c in split.inputs.column_names]
        self.rows = split.inputs.select_columns(columns).to_list()
        self.lengths: list[int] = list(split.inputs["length"])
        self.collate, self.compute = collate, compute

    def __call__(self, order: list[list[int]]):
        for indices in order:
            yield self.compute.batch(self.collate([self.rows[i] for i in indices]))


class Observer:
    """What the loop tells the outside world as it goes: tracking logs through it, a search prunes through it
    (by raising ``optuna.TrialPruned`` from ``on_evaluation``)."""

    def on_step(self, step: int, values: dict[str, float]) -> None:
        """After optimiser step ``step`` (1-based): its loss and learning rate."""

    def on_evaluation(self, entry: dict, steps: int, total_steps: int) -> None:
        """After a validation: the history entry (its ``evaluation`` number counts from 1), the steps taken so
        far and the steps the cap allows."""


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_step: int = 0
    converged: bool = False  # stopped on patience before the cap (False: the cap ended it)
    validation: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    steps: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0


@dataclass
class Outputs:
    """A split's predictions: per-example argmax (padding stripped), the seconds the pass took, and with
    ``confidence`` the class probabilities of every scored unit (an example; a word's first sub-token for NER)
    with its gold class id, in the split's order."""

    argmax: list[Any]
    seconds: float
    probabilities: np.ndarray | None = None  # [units, classes]
    gold: np.ndarray | None = None  # [units]


def predict(model: torch.nn.Module, batches: Batches, batch_size: int, confidence: bool = False) -> Outputs:
    """Per-example argmax over the last logit dimension, in the split's own order, padding stripped."""
    model.eval()
    order = sorted_batches(batches.lengths, batch_size)
    out: list[Any] = [None] * len(batches.lengths)
    probabilities: list[Any] = [None] * len(batches.lengths)
    started = time.perf_counter()
    with batches.compute.inference():
        for indices, batch in zip(order, batches(order), strict=True):
            batch.pop("labels", None)
            logits = model(**batch).logits
            argmax = logits.argmax(-1).cpu()
            probs = logits.float().softmax(-1).cpu() if confidence else None
            for row, i in enumerate(indices):
                out[i] = batches.family.example_output(argmax[row], batches.lengths[i])
                if probs is not None:
                    probabilities[i] = batches.family.example_output(probs[row], batches.lengths[i])
    seconds = time.perf_counter() - started
    if not confidence:
        return Outputs(out, seconds)
    return Outputs(out, seconds, *_scored_units(probabilities, [row["labels"] for row in batches.rows]))


def _scored_units(probabilities: list[torch.Tensor], labels: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Each example's probabilities at the positions its labels score (a tagger's ignored sub-tokens and
    padding carry a negative label), stacked, with the gold class ids."""
    kept_probs, kept_gold = [], []
    for probs, gold in zip(probabilities, labels, strict=True):
        gold = np.asarray(gold).reshape(-1)
        probs = probs.numpy().reshape(len(gold), -1)
        kept_probs.append(probs[gold >= 0])
        kept_gold.append(gold[gold >= 0])
    return np.concatenate(kept_probs), np.concatenate(kept_gold)


def evaluate(
    model: torch.nn.Module,
    batches: Batches,
    family: TaskFamily,
    labels: list[str],
    batch_size: int,
    confidence: bool = False,
) -> tuple[dict, list[Any], Outputs]:
    """Scores, decoded predictions (word-level tags or class ids) and the raw outputs for the split behind
    ``batches``."""
    split = batches.split
    outputs = predict(model, batches, batch_size, confidence)
    predictions = family.decode(outputs.argmax, split.inputs, split.gold, labels)
    return family.score(split.gold, predictions), predictions, outputs


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            # biases and LayerNorm weights are not decayed (BERT recipe)
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (CPU and CUDA) is several times faster than the per-parameter loop; Trainer's default too.
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def _schedule(optimizer: torch.optim.Optimizer, cfg: Any, cap: int) -> Any:
    """Warm-up over ``warmup_ratio`` of the cap, then linear decay to 0 at the cap or a constant rate. Both are
    fixed by the cap alone, so a run that stops early on patience took exactly the steps a longer one takes
    first (HF Trainer's early stopping works the same way)."""
    warmup = int(cfg.warmup_ratio * cap)
    if cfg.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    return get_linear_schedule_with_warmup(optimizer, warmup, cap)


def planned_steps(n_examples: int, cfg: Any) -> int:
    """The cap in optimiser steps: ``epochs`` epochs, or ``max_steps`` if that comes first."""
    steps = math.ceil(n_examples / cfg.batch_size) * cfg.epochs
    return steps if cfg.max_steps is None else min(steps, cfg.max_steps)


@dataclass
class _Optimisation:
    """AdamW with its gradient scaler and warm-up + linear decay schedule."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Any

    def step(self, model: torch.nn.Module, loss: torch.Tensor, max_grad_norm: float) -> float:
        """Backward, clip, step, schedule; returns the learning rate the step used."""
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        lr = self.schedule.get_last_lr()[0]
        self.scaler.step(self.optimizer)  # skipped (and the scale lowered) when fp16 gradients overflowed
        self.scaler.update()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return lr


def _evaluation_line(entry: dict, headline: str, epochs: int, total_steps: int, seconds: float) -> str:
    routed = "".join(f", {k} {v}" for k, v in entry.get("routing", {}).items())
    return (
        f"  epoch {entry['epoch']}/{epochs}, step {entry['step']}/{total_steps}: train loss {entry['train_loss']:.4f}, "
        f"validation {headline} {entry['validation'][headline]:.4f}{routed} ({seconds:.0f}s training)"
    )


@dataclass
class Job:
    """What one training run needs: the prepared model (on ``compute.device``), the method and routing that made
    it, the cell's data with its family and collator, the training settings and the seed."""

    model: torch.nn.Module
    method: Method
    routing: Routing
    data: TaskData
    family: TaskFamily
    collate: Any
    cfg: Any
    seed: int
    compute: Compute


class _Selection:
    """Validation at its points; keeps the best state (an improvement is more than ``min_delta`` above the best
    so far; ties keep the earlier state) and says when ``patience`` validations in a row brought none."""

    def __init__(self, job: Job, result: TrainResult, total_steps: int, log: Callable[[str], None], observers):
        self.job, self.result, self.total_steps, self.log, self.observers = job, result, total_steps, log, observers
        self.batches = Batches(job.data.validation, job.family, job.collate, job.compute)
        self.best_score, self.best_state, self.stale = -math.inf, None, 0

    def due(self, step_in_epoch: int, steps_in_epoch: int) -> bool:
        """Validate every ``eval_every`` steps, at the end of every epoch, and at the cap."""
        every = self.job.cfg.eval_every
        at_end = step_in_epoch == steps_in_epoch or self.result.steps == self.total_steps
        return at_end if every is None else self.result.steps % every == 0 or self.result.steps == self.total_steps

    def __call__(self, epoch: int, train_loss: float) -> bool:
        """Validate now; True when training should stop (patience used up)."""
        job, cfg, headline = self.job, self.job.cfg, self.job.family.headline
        metrics, _, _ = evaluate(job.model, self.batches, job.family, job.data.labels, cfg.eval_batch_size)
        entry = {
            "evaluation": len(self.result.history) + 1,
            "epoch": epoch,
            "step": self.result.steps,
            "train_loss": train_loss,
            "validation": metrics,
        }
        summary = job.routing.epoch_summary()
        entry |= {"routing": summary} if summary else {}
        self.result.history.append(entry)
        self.log(_evaluation_line(entry, headline, cfg.epochs, self.total_steps, self.result.train_seconds))
        for observer in self.observers:
            observer.on_evaluation(entry, self.result.steps, self.total_steps)
        job.model.train()
        if metrics[headline] > self.best_score + (cfg.min_delta if self.best_state is not None else 0.0):
            self.best_score, self.stale = metrics[headline], 0
            self.result.best_epoch, self.result.best_step, self.result.validation = epoch, self.result.steps, metrics
            self.best_state = {k: v.detach().clone() for k, v in job.model.state_dict().items()}
            return False
        self.stale += 1
        return cfg.patience is not None and self.stale >= cfg.patience


def train(
    job: Job,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    observers: Sequence[Observer] = (),
    at_end: Callable[[torch.nn.Module, TrainResult], None] | None = None,
) -> TrainResult:
    """Fine-tune ``job.model`` in place until patience runs out or the cap is reached, and leave it holding the
    weights of the best validation; ``at_end`` sees the model as training left it, and the result so far."""
    cfg = job.cfg
    train_batches = Batches(job.data.train, job.family, job.collate, job.compute)
    total_steps = planned_steps(len(train_batches.rows), cfg)
    optimizer = _optimizer(job.model, cfg.lr, cfg.weight_decay)
    optimisation = _Optimisation(optimizer, job.compute.grad_scaler(), _schedule(optimizer, cfg, total_steps))
    result = TrainResult()
    selection = _Selection(job, result, total_steps, log, observers)
    # disable=None: bars only on a terminal, never thousands of lines in a CI log
    bar = tqdm(total=total_steps, disable=None if progress else True, desc="train", unit="step", leave=False)
    for epoch in range(1, cfg.epochs + 1):
        stop = _epoch(job, train_batches, epoch, optimisation, result, selection, observers, bar)
        if stop or result.steps >= total_steps:
            result.converged = stop
            break
    bar.close()
    if at_end is not None:
        at_end(job.model, result)
    job.model.load_state_dict(selection.best_state)
    return result


def _epoch(
    job: Job,
    batches: Batches,
    epoch: int,
    optimisation: _Optimisation,
    result: TrainResult,
    selection: _Selection,
    observers: Sequence[Observer],
    bar: Any,
) -> bool:
    """One pass over the training split in this epoch's batch order, validating where due; True when the
    selection says stop. Ends early at the cap."""
    cfg, model, routing = job.cfg, job.model, job.routing
    # length-grouped batches (or plain random ones), reshuffled every epoch by seed
    if cfg.group_by_length:
        order = length_grouped_batches(batches.lengths, cfg.batch_size, job.seed * 1000 + epoch)
    else:
        order = random_batches(len(batches.lengths), cfg.batch_size, job.seed * 1000 + epoch)
    order = order[: selection.total_steps - result.steps]
    model.train()
    routing.start_epoch()
    started, loss_sum, losses = time.perf_counter(), 0.0, 0
    for position, (indices, batch) in enumerate(zip(order, batches(order), strict=True), start=1):
        with job.compute.autocast():
            loss = routing.loss(model, batch)
        step_loss = loss.item()  # the step's one device sync
        if not math.isfinite(step_loss):
            raise CellFailed(f"loss became {step_loss} at epoch {epoch}, step {result.steps + 1}")
        lr = optimisation.step(model, loss, cfg.max_grad_norm)
        job.method.on_step(model, result.steps)
        routing.on_step(result.steps, selection.total_steps)
        result.steps += 1
        result.real_tokens += sum(batches.lengths[i] for i in indices)
        result.padded_tokens += batch["attention_mask"].numel()
        loss_sum, losses = loss_sum + step_loss, losses + 1
        for observer in observers:
            observer.on_step(result.steps, {"loss": step_loss, "lr": lr})
        bar.update()
        bar.set_postfix(epoch=epoch, loss=f"{step_loss:.4f}")
        if selection.due(position, len(order)):
            result.train_seconds += time.perf_counter() - started
            stop = selection(epoch, loss_sum / losses)
            started, loss_sum, losses = time.perf_counter(), 0.0, 0
            if stop:
                return True
    result.train_seconds += time.perf_counter() - started
    return False
