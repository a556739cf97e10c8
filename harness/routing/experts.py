"""The shared machinery of strategies that route among experts: parameters, placement, loss, telemetry."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from harness.core.config import Strict
from harness.core.errors import BenchError
from harness.routing.base import Routing
from harness.routing.context import RoutingContext
from harness.routing.moe import ExpertBank, RoutedBlock, Router
from harness.routing.placements import Paths

COLLAPSE = 0.9  # a layer whose busiest expert takes more than this share of tokens is flagged as collapsed


class ExpertParams(Strict):
    """Fields every expert strategy shares; each strategy adds its own and fixes its inference modes.

    Where the experts go and their shape belong to the method (full → upcycled FFNs, adapter → bottleneck
    adapters, lora → LoRA pairs, with the method's reduction, rank, targets); ``placement`` may name that
    site explicitly, and a suite is rejected if it names another.
    """

    experts: Annotated[int, Field(ge=2, le=64)] = 4
    placement: Literal["auto", "ffn", "adapter", "lora"] = "auto"
    every: Annotated[int, Field(ge=1)] = 1  # route every n-th layer, counting from the top


class RoutedModel(nn.Module):
    """Binds each batch's token ids and padding mask for the routers for exactly one forward pass."""

    def __init__(self, model: nn.Module, context: RoutingContext) -> None:
        super().__init__()
        self.model, self.context = model, context

    def forward(self, **batch: torch.Tensor) -> Any:
        with self.context.bind(batch["input_ids"], batch.get("attention_mask")):
            return self.model(**batch)


class ExpertRouting(Routing):
    """Base of every expert strategy: a subclass says only how to build its router."""

    routes_paths = True

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.context = RoutingContext()
        self.blocks: dict[str, RoutedBlock] = {}

    def make_router(self, d_model: int) -> Router:
        raise NotImplementedError

    def _block(self, bank: ExpertBank) -> RoutedBlock:
        """The bank behind a router that reads what its paths read (a LoRA pair on the FFN's second linear reads
        the FFN's hidden width, not the model's)."""
        return RoutedBlock(bank, self.make_router(bank.d_in), self.context, self.params.inference)

    def apply(self, model: nn.Module, paths: Paths | None) -> nn.Module:
        if paths is None:  # the suite's compatibility check keeps this from happening
            raise BenchError(f"routing {self.params.strategy!r} needs a method with parallel paths")
        self.blocks = paths.install(model, self.params.every, self.params.experts, self._block)
        self.placement = paths.placement
        return RoutedModel(model, self.context)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = model(**batch).loss
        return loss + sum(self.context.aux_losses) if self.context.aux_losses else loss

    def start_epoch(self) -> None:
        for block in self.blocks.values():
            block.stats.reset()

    def epoch_summary(self) -> dict[str, Any]:
        telemetry = self.telemetry()
        keys = ("load_entropy", "busiest_expert_share", "balance_loss", "dropped_fraction")
        return {k: telemetry[k] for k in keys if k in telemetry}

    def telemetry(self) -> dict[str, Any]:
        layers = {name: block.stats.summary() for name, block in self.blocks.items()}
        entropies = [layer["entropy"] for layer in layers.values()]
        busiest = max(max(layer["load"]) for layer in layers.values())
        out: dict[str, Any] = {
            "placement": self.placement,
            "load_entropy": round(sum(entropies) / len(entropies), 4),
            "max_entropy": round(math.log(self.params.experts), 4),
            "busiest_expert_share": round(busiest, 4),
            "collapsed": busiest > COLLAPSE,
            "dropped_fraction": round(sum(v["dropped_fraction"] for v in layers.values()) / len(layers), 4),
            "layers": layers,
        }
        balance = [v["balance_loss"] for v in layers.values() if "balance_loss" in v]
        if balance:
            out["balance_loss"] = round(sum(balance) / len(balance), 4)
        return out
