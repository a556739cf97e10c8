"""One training loop for every arm: AdamW, warm-up + linear decay, per-epoch validation, best state kept."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

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
    (by raising ``optuna.TrialPruned`` from ``on_epoch``)."""

    def on_step(self, step: int, values: dict[str, float]) -> None:
        """After optimiser step ``step`` (1-based): its loss and learning rate."""

    def on_epoch(self, entry: dict, steps: int, total_steps: int) -> None:
        """After an epoch's validation: the history entry, the steps taken so far and the steps planned."""


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    validation: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    steps: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0


def predict(model: torch.nn.Module, batches: Batches, batch_size: int) -> list[Any]:
    """Per-example argmax over the last logit dimension, in the split's own order, padding stripped."""
    model.eval()
    order = sorted_batches(batches.lengths, batch_size)
    out: list[Any] = [None] * len(batches.lengths)
    with batches.compute.inference():
        for indices, batch in zip(order, batches(order), strict=True):
            batch.pop("labels", None)
            argmax = model(**batch).logits.argmax(-1).cpu()
            for row, i in enumerate(indices):
                out[i] = batches.family.example_output(argmax[row], batches.lengths[i])
    return out


def evaluate(
    model: torch.nn.Module, batches: Batches, family: TaskFamily, labels: list[str], batch_size: int
) -> tuple[dict, list[Any]]:
    """Scores and decoded predictions (word-level tags or class ids) for the split behind ``batches``."""
    split = batches.split
    predictions = family.decode(predict(model, batches, batch_size), split.inputs, split.gold, labels)
    return family.score(split.gold, predictions), predictions


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            # biases and LayerNorm weights are not decayed (BERT recipe)
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (CPU and CUDA) is several times faster than the per-parameter loop; Trainer's default too.
    return torch.optim.AdamW(groups, lr=lr, fused=True)


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


def _epoch_line(entry: dict, epochs: int, headline: str, seconds: float) -> str:
    routed = "".join(f", {k} {v}" for k, v in entry.get("routing", {}).items())
    return (
        f"  epoch {entry['epoch']}/{epochs}: train loss {entry['train_loss']:.4f}, "
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


def train(
    job: Job,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    observers: Sequence[Observer] = (),
) -> TrainResult:
    """Fine-tune ``job.model`` in place and leave it holding the weights of the best validation epoch."""
    cfg, family = job.cfg, job.family
    train_batches = Batches(job.data.train, family, job.collate, job.compute)
    validation_batches = Batches(job.data.validation, family, job.collate, job.compute)
    total_steps = math.ceil(len(train_batches.rows) / cfg.batch_size) * cfg.epochs
    optimizer = _optimizer(job.model, cfg.lr, cfg.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    optimisation = _Optimisation(optimizer, job.compute.grad_scaler(), schedule)
    result, best_score, best_state = TrainResult(), -math.inf, None
    # disable=None: bars only on a terminal, never thousands of lines in a CI log
    bar = tqdm(total=total_steps, disable=None if progress else True, desc="train", unit="step", leave=False)
    for epoch in range(1, cfg.epochs + 1):
        train_loss, seconds = _epoch(job, train_batches, epoch, optimisation, result, total_steps, observers, bar)
        # -- validate; keep the best state (ties keep the earlier epoch)
        metrics, _ = evaluate(job.model, validation_batches, family, job.data.labels, cfg.eval_batch_size)
        entry = {"epoch": epoch, "train_loss": train_loss, "validation": metrics}
        summary = job.routing.epoch_summary()
        entry |= {"routing": summary} if summary else {}
        result.history.append(entry)
        log(_epoch_line(entry, cfg.epochs, family.headline, seconds))
        for observer in observers:
            observer.on_epoch(entry, result.steps, total_steps)
        if metrics[family.headline] > best_score:
            best_score, result.best_epoch, result.validation = metrics[family.headline], epoch, metrics
            best_state = {k: v.detach().clone() for k, v in job.model.state_dict().items()}
    bar.close()
    job.model.load_state_dict(best_state)
    return result


def _epoch(
    job: Job,
    batches: Batches,
    epoch: int,
    optimisation: _Optimisation,
    result: TrainResult,
    total_steps: int,
    observers: Sequence[Observer],
    bar: Any,
) -> tuple[float, float]:
    """One pass over the training split in this epoch's batch order; returns the mean loss and the seconds."""
    cfg, model, routing = job.cfg, job.model, job.routing
    # length-grouped batches (or plain random ones), reshuffled every epoch by seed
    if cfg.group_by_length:
        order = length_grouped_batches(batches.lengths, cfg.batch_size, job.seed * 1000 + epoch)
    else:
        order = random_batches(len(batches.lengths), cfg.batch_size, job.seed * 1000 + epoch)
    model.train()
    routing.start_epoch()
    started, loss_sum = time.perf_counter(), 0.0
    for indices, batch in zip(order, batches(order), strict=True):
        with job.compute.autocast():
            loss = routing.loss(model, batch)
        step_loss = loss.item()  # the step's one device sync
        if not math.isfinite(step_loss):
            raise CellFailed(f"loss became {step_loss} at epoch {epoch}, step {result.steps + 1}")
        lr = optimisation.step(model, loss, cfg.max_grad_norm)
        job.method.on_step(model, result.steps)
        routing.on_step(result.steps, total_steps)
        result.steps += 1
        result.real_tokens += sum(batches.lengths[i] for i in indices)
        result.padded_tokens += batch["attention_mask"].numel()
        loss_sum += step_loss
        for observer in observers:
            observer.on_step(result.steps, {"loss": step_loss, "lr": lr})
        bar.update()
        bar.set_postfix(epoch=epoch, loss=f"{step_loss:.4f}")
    seconds = time.perf_counter() - started
    result.train_seconds += seconds
    return loss_sum / len(order), seconds
