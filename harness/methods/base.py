"""What every method is (``Method``, ``Baseline``), the registry they join, and helpers they share."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file

from harness.errors import BenchError
from harness.registry import Registry
from harness.schema import Configurable
from harness.schema import describe as describe_config

WEIGHTS = "weights.safetensors"
# peft 0.21 still reads a property that transformers 5 deprecated; the warning is theirs, once per model
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


class Method(Configurable):
    """A method owns its suite parameters and decides which weights train."""

    trains: ClassVar[bool] = True
    task_types: ClassVar[tuple[str, ...]] = ("ner", "classification")
    # where a routing strategy puts this method's parallel paths; None: the method cannot be routed
    placement: ClassVar[str | None] = None
    # False for methods without randomness: one cell per combination instead of one per seed
    seeded: ClassVar[bool] = True

    def conflict(self, task_type: str, routing: Any, regime: Any) -> str | None:
        """Why this method cannot run with this task type, routing and regime; None when it can."""
        name = self.params.name
        if task_type not in self.task_types:
            return f"method {name!r} supports {' and '.join(self.task_types)} tasks, not {task_type}"
        if routing.strategy == "none":
            return None
        if self.placement is None:
            return f"method {name!r} has no parallel paths to route; pair it with routing 'none' in its own grid"
        wanted = getattr(routing, "placement", "auto")
        if wanted not in ("auto", "layer", self.placement):
            return (
                f"routing placement {wanted!r} does not fit method {name!r}, whose paths are {self.placement!r}; "
                "use placement: auto"
            )
        return None

    @property
    def lr(self) -> float | None:
        """The method's own learning rate (parameter-efficient methods want larger ones); None: the suite's."""
        return getattr(self.params, "lr", None)

    def paths(self, model: torch.nn.Module, every: int, n_experts: int, make_block: Any) -> dict[str, Any]:
        """Install ``n_experts`` parallel paths per site, each bank wrapped by ``make_block``; by site name."""
        raise BenchError(f"method {self.params.name!r} cannot be routed")

    def prepare(self, model: torch.nn.Module, routed: bool) -> torch.nn.Module:
        """Wrap or freeze ``model`` (``routed``: a strategy already installed this method's paths)."""
        raise NotImplementedError

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


@dataclass
class Predicted:
    """A baseline's test answers in the family's decoded form (tags per word, class ids), what else its answers
    showed (length-normalised accuracy, how many generations parsed), and the raw generations, for audit."""

    values: list[Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    generations: list[str] | None = None


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
