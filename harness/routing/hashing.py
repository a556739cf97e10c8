"""``hash``: a fixed, balanced hash of the token id picks the expert (Hash Layers, Roller et al. 2021)."""

from __future__ import annotations

from typing import Literal

import torch

from harness.routing.base import routers
from harness.routing.experts import ExpertParams, ExpertRouting
from harness.routing.moe import Route, Router, Tokens
from harness.routing.placements import Paths

HASH_SEED = 0  # fixed: the same token goes to the same expert in every cell, seed and run


def balanced_hash(vocab_size: int, n_experts: int) -> torch.Tensor:
    """A random permutation of the vocabulary dealt round-robin to experts: bucket sizes differ by at most one.

    Roller et al. also balance by token frequency; balancing the vocabulary keeps the table independent of
    any corpus, so one table serves every task (a choice we document rather than hide).
    """
    table = torch.empty(vocab_size, dtype=torch.long)
    order = torch.randperm(vocab_size, generator=torch.Generator().manual_seed(HASH_SEED))
    table[order] = torch.arange(vocab_size) % n_experts
    return table


class HashRouter(Router):
    def __init__(self, n_experts: int, vocab_size: int) -> None:
        super().__init__(n_experts)
        self.register_buffer("table", balanced_hash(vocab_size, n_experts), persistent=False)

    def forward(self, x: torch.Tensor, tokens: Tokens) -> Route:
        experts = self.table[tokens.ids].unsqueeze(1)
        return Route(experts=experts, weights=None)


class HashParams(ExpertParams):
    strategy: Literal["hash"] = "hash"
    inference: Literal["top", "ensemble", "merge"] = "top"


@routers.register("hash")
class HashRouting(ExpertRouting):
    Params = HashParams

    def apply(self, model: torch.nn.Module, paths: Paths | None) -> torch.nn.Module:
        self.vocab_size = model.config.vocab_size
        return super().apply(model, paths)

    def make_router(self, d_model: int) -> Router:
        return HashRouter(self.params.experts, self.vocab_size)
