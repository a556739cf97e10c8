"""Full fine-tuning: every weight of the backbone and the task head trains."""

from __future__ import annotations

from typing import Literal

import torch

from harness.methods import Method, methods
from harness.schema import Strict


class FullParams(Strict):
    name: Literal["full"] = "full"


@methods.register("full")
class Full(Method):
    Params = FullParams

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model.requires_grad_(True)
        return model
