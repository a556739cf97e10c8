"""What every method is (``Method``, ``Baseline``), the registry they join, and helpers they share."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file

from harness.core.config import Configurable
from harness.core.config import describe as describe_config
from harness.core.errors import BenchError
from harness.core.registry import Registry
from harness.routing.placements import Paths
from harness.tasks.base import Predicted, TaskFamily

WEIGHTS = "weights.safetensors"
# peft 0.21 still reads a property that transformers 5 deprecated; the warning is theirs, once per model
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


class Method(Configurable):
    """A method owns its suite parameters and decides which weights train."""

    trains: ClassVar[bool] = True
    task_types: ClassVar[tuple[str, ...] | None] = None  # None: every task family
    # False for methods without randomness: one cell per combination instead of one per seed
    seeded: ClassVar[bool] = True

    def conflict(self, task_type: str, regime: Any) -> str | None:
        """Why this method's own parameters cannot run with this task type and regime (a template for another
        task type …); None when they can. Task types and routing are checked in ``compatibility``."""
        return None

    def paths(self) -> Paths | None:
        """The parallel paths a routing strategy can turn into experts; None: the method cannot be routed."""
        return None

    def prepare(self, model: torch.nn.Module, family: TaskFamily) -> torch.nn.Module:
        """The method on its own (no strategy routes its paths): wrap the model (for ``family``'s head), add its
        one path, freeze."""
        raise NotImplementedError

    def trainable(self, model: torch.nn.Module) -> Callable[[str], bool]:
        """Which parameters train once a strategy has installed this method's paths as experts."""
        return lambda name: True

    def on_step(self, model: torch.nn.Module, step: int) -> None:
        """Called after every optimiser step (schedules, re-normalisation); most methods need nothing."""

    def save(self, model: torch.nn.Module, folder: Path) -> None:
        """Write the weights this method trained (not the frozen backbone) to ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        trained = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(trained, folder / WEIGHTS)

    def load(self, model: torch.nn.Module, folder: Path) -> None:
        """Load weights written by ``save`` into a model prepared the same way."""
        tensors = load_file(folder / WEIGHTS)
        expected = {n for n, p in model.named_parameters() if p.requires_grad}
        if set(tensors) != expected:
            missing = sorted(expected - set(tensors))[:3] or sorted(set(tensors) - expected)[:3]
            raise BenchError(f"{folder / WEIGHTS}: does not match the {self.params.name} model ({missing})")
        model.load_state_dict(tensors, strict=False)


class Baseline(Method):
    """A method that predicts without training (prompting a language model, a majority rule)."""

    trains: ClassVar[bool] = False

    def predict(
        self, data: Any, task_type: str, split: str, seed: int, device: torch.device, progress: bool = False
    ) -> Predicted:
        """Predictions for ``data.<split>``, computed on ``device``; with ``progress``, a bar on a terminal."""
        raise NotImplementedError

    def total_params(self, device: torch.device) -> int:
        """Parameters of the model the method consults (a language model, loaded on ``device``); 0 for rules."""
        return 0


methods: Registry[type[Method]] = Registry("method")


def build_method(params: Any) -> Method:
    return methods.get(params.name)(params)


def describe(config: dict[str, Any]) -> str:
    """A method config as a leaderboard label, e.g. ``lora r=4``."""
    return describe_config(config, methods.get(config["name"]).Params, "name")


def trainable_only(model: torch.nn.Module, keep: Any) -> torch.nn.Module:
    """Freeze every parameter whose name ``keep`` rejects (never unfreezes: a fixed router stays fixed)."""
    for name, param in model.named_parameters():
        if not keep(name):
            param.requires_grad_(False)
    return model


def is_head(model: torch.nn.Module, name: str) -> bool:
    """True for the task head: parameters outside the backbone (``bert.`` …), e.g. ``classifier.weight``."""
    inner = getattr(model, "model", model)
    return f"{getattr(inner, 'base_model_prefix', 'bert')}." not in name
