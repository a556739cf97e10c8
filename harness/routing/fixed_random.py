"""``fixed_random``: a randomly initialised router frozen at init; the number of active experts can grow
over training (SMoE-Dropout, Chen et al. 2023)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field, model_validator

from harness.routing.base import routers
from harness.routing.experts import ExpertParams, ExpertRouting
from harness.routing.moe import Route, Router, Tokens


class FrozenRouter(Router):
    """A frozen random gate choosing the top ``k`` experts. ``k`` is part of the router's state (a buffer in its
    state dict): restoring the best epoch's weights restores the k they were trained and selected at."""

    def __init__(self, d_model: int, n_experts: int, k: int) -> None:
        super().__init__(n_experts)
        self.gate = torch.nn.Linear(d_model, n_experts, bias=False)
        torch.nn.init.normal_(self.gate.weight, std=d_model**-0.5)
        self.gate.requires_grad_(False)
        self.register_buffer("active", torch.tensor(k))
        self.k = k  # the buffer's value as an int: topk needs one, and reading the buffer would sync a GPU
        self.register_load_state_dict_post_hook(FrozenRouter._k_from_state)

    def set_k(self, k: int) -> None:
        if k != self.k:
            self.k = k
            self.active.fill_(k)

    @staticmethod
    def _k_from_state(module: FrozenRouter, _keys: object) -> None:
        module.k = int(module.active)

    def forward(self, x: torch.Tensor, tokens: Tokens) -> Route:
        logits = self.gate(x.detach())
        top, experts = logits.topk(self.k, dim=-1)
        return Route(experts=experts, weights=top.softmax(-1).to(x.dtype))


class FixedRandomParams(ExpertParams):
    strategy: Literal["fixed_random"] = "fixed_random"
    inference: Literal["top", "ensemble", "merge"] = "top"
    k_start: Annotated[int, Field(ge=1)] = 1
    k_end: Annotated[int, Field(ge=1)] | None = None  # grows linearly from k_start over training; None: fixed

    @model_validator(mode="after")
    def _k_within_experts(self) -> FixedRandomParams:
        for name in ("k_start", "k_end"):
            value = getattr(self, name)
            if value is not None and value > self.experts:
                raise ValueError(f"{name}={value} is more than experts={self.experts}")
        return self


@routers.register("fixed_random")
class FixedRandom(ExpertRouting):
    Params = FixedRandomParams

    def make_router(self, d_model: int) -> Router:
        return FrozenRouter(d_model, self.params.experts, self.params.k_start)

    def on_step(self, step: int, total_steps: int) -> None:
        p = self.params
        if p.k_end is None:
            return
        k = p.k_start + round((p.k_end - p.k_start) * min(1.0, (step + 1) / max(total_steps, 1)))
        for block in self.blocks.values():
            block.router.set_k(k)
