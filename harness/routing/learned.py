"""Learned softmax routers: ``topk`` (Shazeer et al. 2017), ``switch`` (Fedus et al. 2021), ``gshard``
(Lepikhin et al. 2020). One router class, three strategies that differ in k, capacity and 2nd-expert policy.

Upcycling needs the routed model to equal the dense one at initialisation, so combine weights sum to one:
top-k weights are renormalised over the chosen experts (as Mixtral does); a single expert's weight is
p / stopgrad(p) — 1 in value, while the router still receives Switch's gradient, scaled by 1/p.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from harness.routing.base import routers
from harness.routing.experts import ExpertParams, ExpertRouting
from harness.routing.moe import Route, Router, Tokens


def load_balancing_loss(probs: torch.Tensor, first_choice: torch.Tensor) -> torch.Tensor:
    """Switch eq. 4 without α: E · Σᵢ fᵢ · Pᵢ, where fᵢ is the share of tokens whose first choice is expert i
    and Pᵢ the mean router probability of i. Its minimum, 1.0, is reached by a uniform assignment."""
    n_experts = probs.shape[-1]
    fraction = torch.bincount(first_choice, minlength=n_experts).to(probs.dtype) / first_choice.numel()
    return n_experts * (fraction * probs.mean(0)).sum()


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's router z-loss: mean of logsumexp(logits)², keeps router logits small."""
    return torch.logsumexp(logits.float(), -1).pow(2).mean()


def capacity_keep(experts: torch.Tensor, n_experts: int, capacity_factor: float) -> torch.Tensor:
    """True for the first ⌈factor · n / E⌉ tokens (in order) sent to each expert; the rest are dropped."""
    capacity = math.ceil(capacity_factor * experts.numel() / n_experts)
    one_hot = F.one_hot(experts, n_experts)
    position = (one_hot.cumsum(0) * one_hot).sum(-1) - 1  # rank of each token within its expert's queue
    return position < capacity


class LearnedRouter(Router):
    def __init__(
        self,
        d_model: int,
        n_experts: int,
        k: int,
        *,
        noise: float = 0.0,
        balance: float = 0.0,
        z: float = 0.0,
        capacity_factor: float | None = None,
        gshard_second: bool = False,
    ) -> None:
        super().__init__(n_experts)
        self.gate = nn.Linear(d_model, n_experts, bias=False)
        nn.init.normal_(self.gate.weight, std=0.02)
        self.k, self.noise, self.balance, self.z = k, noise, balance, z
        self.capacity_factor, self.gshard_second = capacity_factor, gshard_second

    def forward(self, x: torch.Tensor, tokens: Tokens) -> Route:
        # Selective precision (Fedus et al. 2021, section 2.4): the router in float32 under any autocast. Also
        # its matmul has one row per real token, a new shape in every batch, for which oneDNN would build and
        # cache a bf16 kernel: measured, those kernels were most of Switch's peak memory above random routing's.
        with torch.autocast(x.device.type, enabled=False):
            logits = self.gate(x.float())
        if self.training and self.noise > 0:  # exploration noise on the logits (training only)
            logits = logits + torch.randn_like(logits) * self.noise
        probs = logits.softmax(-1)
        top_p, experts = probs.topk(self.k, dim=-1)
        weights = top_p / top_p.detach() if self.k == 1 else top_p / top_p.sum(-1, keepdim=True)
        keep = None
        if self.training and self.gshard_second:  # GShard: keep the 2nd expert with probability 2·g₂
            second = torch.rand(x.shape[0], device=x.device) < 2 * weights[:, 1].detach()
            keep = torch.stack([torch.ones_like(second), second], dim=1)
        if self.training and self.capacity_factor is not None:  # overflow beyond capacity is dropped
            first = capacity_keep(experts[:, 0], self.n_experts, self.capacity_factor)
            keep = first.unsqueeze(1) if keep is None else keep & first.unsqueeze(1)
        balance = load_balancing_loss(probs, experts[:, 0])
        aux = self.balance * balance + (self.z * z_loss(logits) if self.z > 0 else 0.0)
        return Route(
            experts=experts, weights=weights.to(x.dtype), keep=keep, aux_loss=aux, balance=float(balance.detach())
        )


class LearnedParams(ExpertParams):
    inference: Literal["top", "ensemble", "merge"] = "top"
    aux_loss: Annotated[float, Field(ge=0)] = 0.01


class TopKParams(LearnedParams):
    strategy: Literal["topk"] = "topk"
    k: Annotated[int, Field(ge=1)] = 2
    noise: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _k_within_experts(self) -> TopKParams:
        if self.k > self.experts:
            raise ValueError(f"k={self.k} is more than experts={self.experts}")
        return self


class SwitchParams(LearnedParams):
    strategy: Literal["switch"] = "switch"
    capacity_factor: Annotated[float, Field(gt=0)] | None = 1.25
    z_loss: Annotated[float, Field(ge=0)] = 0.0


class GShardParams(LearnedParams):
    strategy: Literal["gshard"] = "gshard"
    capacity_factor: Annotated[float, Field(gt=0)] | None = None


@routers.register("topk")
class TopK(ExpertRouting):
    Params = TopKParams

    def make_router(self, d_model: int) -> Router:
        p = self.params
        return LearnedRouter(d_model, p.experts, p.k, noise=p.noise, balance=p.aux_loss)


@routers.register("switch")
class Switch(ExpertRouting):
    Params = SwitchParams

    def make_router(self, d_model: int) -> Router:
        p = self.params
        return LearnedRouter(d_model, p.experts, 1, balance=p.aux_loss, z=p.z_loss, capacity_factor=p.capacity_factor)


@routers.register("gshard")
class GShard(ExpertRouting):
    Params = GShardParams

    def make_router(self, d_model: int) -> Router:
        p = self.params
        return LearnedRouter(
            d_model, p.experts, 2, balance=p.aux_loss, capacity_factor=p.capacity_factor, gshard_second=True
        )
