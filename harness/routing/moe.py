"""Routed blocks: a router picks experts per token, tokens are grouped by expert, each expert runs once.

One mechanism serves every placement. An ``ExpertBank`` holds E parallel paths (upcycled FFNs, bottleneck
adapters or LoRA pairs); a ``Router`` returns, per token, the chosen experts and their combine weights; a
``RoutedBlock`` dispatches, combines, counts the load, and at inference can instead ``merge`` the experts'
weights into one path (AdaMix) or ``ensemble`` their outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.routing.context import RoutingContext

INFERENCE_MODES = ("sample", "top", "ensemble", "merge")


@dataclass
class Tokens:
    """Facts about the routed (non-padding) tokens that some routers need."""

    ids: torch.Tensor  # [n] token ids
    sequence: torch.Tensor  # [n] index of each token's sequence in the batch
    n_sequences: int


@dataclass
class Route:
    experts: torch.Tensor  # [n, k] expert index per token and slot
    weights: torch.Tensor | None  # [n, k] combine weights; None means all 1 (no multiply: random, hash)
    keep: torch.Tensor | None = None  # [n, k] False where a slot is dropped (capacity, GShard's 2nd expert)
    aux_loss: torch.Tensor | None = None  # already scaled by its coefficient; joins the training loss
    balance: float | None = None  # the unscaled load-balancing value, for telemetry


class Router(nn.Module):
    """Maps routed tokens to experts. Subclasses implement ``forward(x, tokens) -> Route``."""

    def __init__(self, n_experts: int) -> None:
        super().__init__()
        self.n_experts = n_experts

    def forward(self, x: torch.Tensor, tokens: Tokens) -> Route:
        raise NotImplementedError


class ExpertBank(nn.Module):
    """E parallel paths, one set of Parameters each: ``expert(e, x)``, ``merged(x)`` (averaged weights)."""

    n_experts: int
    d_in: int  # the width of the input the paths read, which a learned router reads too

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def merged(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def ensemble(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.expert(e, x) for e in range(self.n_experts)]).mean(0)


def _copies(t: torch.Tensor, n: int) -> nn.ParameterList:
    # One Parameter per expert, not one stacked tensor: indexing a stacked Parameter makes every expert's
    # backward materialise a gradient of the whole stack (E times the work, measured 5x slower at E = 16).
    return nn.ParameterList(nn.Parameter(t.detach().clone()) for _ in range(n))


def mean_of(params: nn.ParameterList) -> torch.Tensor:
    return torch.stack(list(params)).mean(0)


class FFNExperts(ExpertBank):
    """Sparse upcycling (Komatsuzaki et al. 2022): every expert starts as a copy of the dense FFN."""

    def __init__(self, up: nn.Linear, down: nn.Linear, activation: nn.Module, n_experts: int) -> None:
        super().__init__()
        self.n_experts, self.d_in = n_experts, up.in_features
        self.w_up, self.b_up = _copies(up.weight, n_experts), _copies(up.bias, n_experts)
        self.w_down, self.b_down = _copies(down.weight, n_experts), _copies(down.bias, n_experts)
        self.activation = activation

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.activation(F.linear(x, self.w_up[e], self.b_up[e])), self.w_down[e], self.b_down[e])

    def merged(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(F.linear(x, mean_of(self.w_up), mean_of(self.b_up)))
        return F.linear(hidden, mean_of(self.w_down), mean_of(self.b_down))


ROW_MULTIPLE = 32


def _rows_to_multiple(group: torch.Tensor) -> torch.Tensor:
    """The group with zero rows appended up to a multiple of ``ROW_MULTIPLE``. An expert's group size changes with
    every batch; oneDNN (bf16, AMX) builds a GEMM kernel per new shape, which cost more than the GEMM itself, while
    rounded sizes repeat and hit its cache (measured: 1,200-1,400 rows 3.5 ms a call, 1,280/1,344 rows 0.58 ms)."""
    extra = -group.shape[0] % ROW_MULTIPLE
    return F.pad(group, (0, 0, 0, extra)) if extra else group


def dispatch(x: torch.Tensor, route: Route, bank: ExpertBank) -> torch.Tensor:
    """Σₖ wₖ · expertₖ(x) per token: assignments sorted by expert, one call per expert on its group."""
    n, k = route.experts.shape
    experts = route.experts.reshape(-1)
    weights = None if route.weights is None else route.weights.reshape(-1)
    token = torch.arange(n, device=x.device).repeat_interleave(k)
    if route.keep is not None:
        kept = route.keep.reshape(-1)
        experts, token = experts[kept], token[kept]
        weights = None if weights is None else weights[kept]
    order = torch.argsort(experts, stable=True)
    counts = torch.bincount(experts, minlength=bank.n_experts).tolist()
    token = token[order]
    groups = x.index_select(0, token).split(counts)
    outputs = [bank.expert(e, _rows_to_multiple(group))[: counts[e]] for e, group in enumerate(groups) if counts[e]]
    if not outputs:
        return torch.zeros_like(x)
    combined = torch.cat(outputs)
    if weights is not None:
        combined = combined * weights[order].unsqueeze(-1).to(x.dtype)
    if route.keep is None and k == 1:  # each token has exactly one row: place rows, no zero-fill and sum
        return combined.new_empty(n, combined.shape[-1]).index_copy(0, token, combined)
    return combined.new_zeros(n, combined.shape[-1]).index_add(0, token, combined)


class LoadStats:
    """Assignments per expert and dropped slots over routed (real) tokens, since the last ``reset``."""

    def __init__(self, n_experts: int) -> None:
        self.counts = torch.zeros(n_experts, dtype=torch.long)
        self.dropped = 0
        self.balance: list[float] = []

    def reset(self) -> None:
        self.counts.zero_()
        self.dropped = 0
        self.balance = []

    def update(self, route: Route) -> None:
        experts = route.experts if route.keep is None else route.experts[route.keep]
        self.counts += torch.bincount(experts.reshape(-1).cpu(), minlength=len(self.counts))
        self.dropped += 0 if route.keep is None else int((~route.keep).sum())
        if route.balance is not None:
            self.balance.append(route.balance)

    def summary(self) -> dict:
        total = int(self.counts.sum())
        load = (self.counts.double() / max(total, 1)).tolist()
        entropy = -sum(p * math.log(p) for p in load if p > 0)
        out = {
            "load": [round(p, 4) for p in load],
            "entropy": round(entropy, 4),
            "tokens": total,
            "dropped_fraction": round(self.dropped / max(total + self.dropped, 1), 4),
        }
        if self.balance:
            out["balance_loss"] = round(sum(self.balance) / len(self.balance), 4)
        return out


class RoutedBlock(nn.Module):
    """Routes the real tokens of ``x`` [batch, seq, d] through a bank; padding positions get zeros."""

    def __init__(self, bank: ExpertBank, router: Router, context: RoutingContext, inference: str) -> None:
        super().__init__()
        if inference not in INFERENCE_MODES:
            raise ValueError(f"inference mode {inference!r} not in {INFERENCE_MODES}")
        self.bank, self.router, self.context, self.inference = bank, router, context, inference
        self.stats = LoadStats(bank.n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.inference == "merge":
            return self.bank.merged(x)
        if not self.training and self.inference == "ensemble":
            return self.bank.ensemble(x)
        flat = x.reshape(-1, x.shape[-1])
        real = self.context.flat_mask()
        sequence = torch.arange(x.shape[0], device=x.device).repeat_interleave(x.shape[1])
        ids = self.context.flat_token_ids()
        # Length-grouped batches are mostly padding-free: then skip the gather and scatter of real tokens.
        index = None if bool(real.all()) else real.nonzero().squeeze(1)
        if index is not None:
            flat, ids, sequence = flat.index_select(0, index), ids[index], sequence[index]
        route = self.router(flat, Tokens(ids=ids, sequence=sequence, n_sequences=x.shape[0]))
        if self.training:
            self.stats.update(route)
            if route.aux_loss is not None:
                self.context.aux_losses.append(route.aux_loss)
        routed = dispatch(flat, route, self.bank)
        if index is not None:
            out = routed.new_zeros(real.shape[0], routed.shape[-1])
            routed = out.index_copy(0, index, routed)
        return routed.reshape(*x.shape[:-1], routed.shape[-1])
