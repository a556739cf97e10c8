"""How weights adapt: one module per method, each registered by name with its own parameter model."""

from __future__ import annotations

from typing import Any

import torch

from harness.registry import Registry
from harness.schema import Configurable


class Method(Configurable):
    """A method owns its suite parameters and decides which weights train."""

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Wrap or freeze ``model``; the returned module is the one that trains."""
        raise NotImplementedError

    def on_step(self, model: torch.nn.Module, step: int) -> None:
        """Called after every optimiser step (schedules, re-normalisation); most methods need nothing."""


methods: Registry[type[Method]] = Registry("method")


def build_method(params: Any) -> Method:
    return methods.get(params.name)(params)


from harness.methods import full  # noqa: E402  (registers itself)

__all__ = ["Method", "build_method", "full", "methods"]
