"""``thor``: stochastic experts with two passes per step and a consistency regulariser (Zuo et al. 2022)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from harness.routing.base import routers
from harness.routing.consistency import two_pass_loss
from harness.routing.experts import ExpertParams
from harness.routing.random import RandomRouting


class ThorParams(ExpertParams):
    strategy: Literal["thor"] = "thor"
    granularity: Literal["token", "sequence", "batch"] = "token"
    alpha: Annotated[float, Field(ge=0)] = 1.0
    inference: Literal["sample", "merge"] = "sample"


@routers.register("thor")
class Thor(RandomRouting):
    """Random routing whose loss is always CE(p₁) + CE(p₂) + α · ½(KL(p₁‖p₂) + KL(p₂‖p₁))."""

    Params = ThorParams

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return two_pass_loss(model, batch, self.params.alpha, self.context)
