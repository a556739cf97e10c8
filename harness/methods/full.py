"""Full fine-tuning: every weight of the backbone and the task head trains. Routed, the FFNs become experts
upcycled from the pretrained FFN (sparse upcycling)."""

from __future__ import annotations

from typing import Any, Literal

import torch

from harness.methods.base import Method, methods
from harness.routing.placements import install_ffn
from harness.schema import Strict


class FullParams(Strict):
    name: Literal["full"] = "full"


@methods.register("full")
class Full(Method):
    Params = FullParams
    placement = "ffn"

    def paths(self, model: torch.nn.Module, every: int, n_experts: int, make_block: Any) -> dict[str, Any]:
        return install_ffn(model, every, n_experts, make_block)

    def prepare(self, model: torch.nn.Module, routed: bool) -> torch.nn.Module:
        return model  # everything already trains, except what a strategy froze on purpose (a fixed router)
