"""``layerdrop``: during training each transformer layer is skipped with probability p (Fan et al. 2019);
at inference every layer runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from harness.core.config import Strict
from harness.routing.base import Routing, routers
from harness.routing.placements import Paths, encoder_layers


class DroppableLayer(nn.Module):
    """Runs ``layer`` or, in training with probability p, passes the hidden states through untouched."""

    def __init__(self, layer: nn.Module, p: float) -> None:
        super().__init__()
        self.layer, self.p = layer, p
        self.calls = 0
        self.skipped = 0

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.training:
            self.calls += 1
            if torch.rand(()) < self.p:
                self.skipped += 1
                return hidden_states
        return self.layer(hidden_states, *args, **kwargs)


class LayerDropParams(Strict):
    strategy: Literal["layerdrop"] = "layerdrop"
    p: Annotated[float, Field(ge=0, lt=1)] = 0.1
    placement: Literal["auto", "layer"] = "auto"


@routers.register("layerdrop")
class LayerDrop(Routing):
    Params = LayerDropParams

    def apply(self, model: nn.Module, paths: Paths | None) -> nn.Module:
        layers = encoder_layers(model)
        self.layers = [DroppableLayer(layer, self.params.p) for layer in layers]
        for i, wrapped in enumerate(self.layers):
            layers[i] = wrapped
        return model

    def start_epoch(self) -> None:
        for layer in self.layers:
            layer.calls = layer.skipped = 0

    def epoch_summary(self) -> dict[str, Any]:
        return {"skip_rate": self.telemetry()["skip_rate"]}

    def telemetry(self) -> dict[str, Any]:
        rates = [layer.skipped / max(layer.calls, 1) for layer in self.layers]
        return {"placement": "layer", "skip_rate": [round(r, 4) for r in rates]}
