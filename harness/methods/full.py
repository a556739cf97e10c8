"""Full fine-tuning: every weight of the backbone and the task head trains. Routed, the FFNs become experts
upcycled from the pretrained FFN (sparse upcycling)."""

from __future__ import annotations

from typing import Literal

import torch

from harness.core.config import Strict
from harness.methods.base import Method, methods
from harness.routing.placements import Paths, install_ffn
from harness.tasks.base import TaskFamily


class FullParams(Strict):
    name: Literal["full"] = "full"


@methods.register("full")
class Full(Method):
    Params = FullParams

    def paths(self) -> Paths:
        return Paths("ffn", install_ffn)

    def prepare(self, model: torch.nn.Module, family: TaskFamily) -> torch.nn.Module:
        return model  # everything trains

    # routed, everything trains too, except what a strategy froze on purpose (a fixed router)
