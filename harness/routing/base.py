"""What every routing strategy is (``Routing``: the hooks the training loop calls) and the registry they join."""

from __future__ import annotations

from typing import Any

import torch

from harness.core.config import Configurable
from harness.core.config import describe as describe_config
from harness.core.registry import Registry
from harness.routing.placements import Paths


class Routing(Configurable):
    """A routing strategy owns its suite parameters, turns a dense model into a routed one, and owns the loss.

    The training loop calls only these hooks, so a strategy never needs an ``if`` in the loop.
    """

    routes_paths: bool = False  # True: ``apply`` turns the method's paths into routed experts

    def apply(self, model: torch.nn.Module, paths: Paths | None) -> torch.nn.Module:
        """Return the model to train; ``paths``: the method's parallel paths (where they go, their shape), for
        strategies that route them."""
        return model

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch (task loss plus whatever the strategy adds)."""
        return model(**batch).loss

    def on_step(self, step: int, total_steps: int) -> None:
        """After every optimiser step (schedules such as a growing active k)."""

    def start_epoch(self) -> None:
        """Before every training epoch (telemetry counts restart)."""

    def epoch_summary(self) -> dict[str, Any]:
        """The telemetry worth a line after every epoch (the full per-layer table goes in the record once)."""
        return {}

    def telemetry(self) -> dict[str, Any]:
        """Routing statistics of the last training epoch for the record; empty for dense models."""
        return {}


routers: Registry[type[Routing]] = Registry("routing strategy")


def build_routing(params: Any) -> Routing:
    return routers.get(params.strategy)(params)


def describe(config: dict[str, Any]) -> str:
    """A routing config as a leaderboard label, e.g. ``random placement=ffn`` (the inference mode has its own
    column)."""
    return describe_config(config, routers.get(config["strategy"]).Params, "strategy", hidden=("inference",))
