"""``random``: every routed token (or sequence, or batch) takes one expert drawn uniformly (AdaMix, THOR)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from harness.routing.base import routers
from harness.routing.consistency import two_pass_loss
from harness.routing.experts import ExpertParams, ExpertRouting
from harness.routing.moe import Route, Router, Tokens


class RandomRouter(Router):
    """Uniform draws from torch's generator (seeded per cell), at the chosen granularity; weight 1."""

    def __init__(self, n_experts: int, granularity: str) -> None:
        super().__init__(n_experts)
        self.granularity = granularity

    def forward(self, x: torch.Tensor, tokens: Tokens) -> Route:
        if self.granularity == "token":
            experts = torch.randint(self.n_experts, (x.shape[0],), device=x.device)
        elif self.granularity == "sequence":
            experts = torch.randint(self.n_experts, (tokens.n_sequences,), device=x.device)[tokens.sequence]
        else:  # batch
            experts = torch.randint(self.n_experts, (1,), device=x.device).expand(x.shape[0])
        return Route(experts=experts.unsqueeze(1), weights=None)


class RandomParams(ExpertParams):
    strategy: Literal["random"] = "random"
    granularity: Literal["token", "sequence", "batch"] = "token"
    inference: Literal["sample", "ensemble", "merge"] = "merge"
    consistency: Annotated[float, Field(ge=0)] = 0.0  # > 0: two passes per step and α·symmetric KL (THOR's term)


@routers.register("random")
class RandomRouting(ExpertRouting):
    Params = RandomParams

    def make_router(self, d_model: int) -> Router:
        return RandomRouter(self.params.experts, self.params.granularity)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.params.consistency > 0:
            return two_pass_loss(model, batch, self.params.consistency, self.context)
        return super().loss(model, batch)
