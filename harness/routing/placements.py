"""Where parallel paths go in a BERT-family encoder: the FFN, or small paths added beside linears
(bottleneck adapters after a projection, LoRA pairs on a linear's input). Methods choose the sites and the
path shape; routing strategies choose how many paths and how a token picks one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from harness.core.errors import BenchError
from harness.routing.moe import ExpertBank, FFNExperts, RoutedBlock, mean_of

MakeBlock = Callable[[ExpertBank], RoutedBlock]


@dataclass(frozen=True)
class Paths:
    """A method's parallel paths, all a routing strategy needs of the method: where they go (``placement``: ffn,
    adapter, lora) and ``install(model, every, n_experts, make_block)``, which puts ``n_experts`` of them at each
    site of every ``every``-th layer, each bank wrapped by ``make_block``, and returns the blocks by site."""

    placement: str
    install: Callable[[nn.Module, int, int, MakeBlock], dict[str, nn.Module]]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks (``encoder.layer`` in BERT, RoBERTa, ELECTRA, MiniLM …)."""
    for name, module in model.named_modules():
        if name.endswith("encoder.layer") and isinstance(module, nn.ModuleList):
            return module
    raise BenchError(f"{type(model).__name__}: no encoder.layer list found; routing supports BERT-family encoders")


def _chosen(model: nn.Module, every: int) -> list[tuple[int, nn.Module]]:
    """Every ``every``-th layer, counting from the last (the layers nearest the task head are routed first)."""
    layers = list(encoder_layers(model))
    return [(i, layer) for i, layer in enumerate(layers) if (len(layers) - 1 - i) % every == 0]


def install_ffn(model: nn.Module, every: int, n_experts: int, make_block: MakeBlock) -> dict[str, RoutedBlock]:
    """Replace ``intermediate`` (up-projection + activation) by a routed bank of upcycled FFNs and make
    ``output.dense`` the identity: each expert computes the whole FFN; dropout, residual and LayerNorm stay."""
    blocks = {}
    for i, layer in _chosen(model, every):
        up, down = layer.intermediate.dense, layer.output.dense
        bank = FFNExperts(up, down, layer.intermediate.intermediate_act_fn, n_experts)
        layer.intermediate = blocks[f"layer{i}.ffn"] = make_block(bank)
        layer.output.dense = nn.Identity()
    return blocks


class DeltaLinear(nn.Module):
    """``out = base(x) + Δ``: the base linear is kept, a (routed) path adds to it (peft-style wrapper).

    ``on_output`` says what the path reads: the base output (a bottleneck adapter after the projection,
    Houlsby/AdaMix) or the base input (LoRA).
    """

    def __init__(self, base: nn.Linear, block: nn.Module, on_output: bool) -> None:
        super().__init__()
        self.base, self.block, self.on_output = base, block, on_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return out + self.block(out if self.on_output else x)


def is_path(name: str) -> bool:
    """True for a parameter of a path added beside a linear (it lives under ``DeltaLinear.block``)."""
    return ".block." in name


class AdapterExperts(ExpertBank):
    """E bottleneck adapters ``up(gelu(down(h)))``; ``up`` starts at zero so the model is unchanged at init.
    With ``share_up`` all experts share one up-projection (AdaMix's parameter-saving variant)."""

    def __init__(self, d: int, reduction: int, n_experts: int, share_up: bool = False) -> None:
        super().__init__()
        self.n_experts, self.d_in, bottleneck, n_up = n_experts, d, max(1, d // reduction), 1 if share_up else n_experts
        self.down = nn.ParameterList(nn.Parameter(torch.randn(bottleneck, d) * d**-0.5) for _ in range(n_experts))
        self.down_bias = nn.ParameterList(nn.Parameter(torch.zeros(bottleneck)) for _ in range(n_experts))
        self.up = nn.ParameterList(nn.Parameter(torch.zeros(d, bottleneck)) for _ in range(n_up))
        self.up_bias = nn.ParameterList(nn.Parameter(torch.zeros(d)) for _ in range(n_up))

    def _up(self, e: int) -> int:
        return 0 if len(self.up) == 1 else e

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        hidden = nn.functional.gelu(nn.functional.linear(x, self.down[e], self.down_bias[e]))
        return nn.functional.linear(hidden, self.up[self._up(e)], self.up_bias[self._up(e)])

    def merged(self, x: torch.Tensor) -> torch.Tensor:
        hidden = nn.functional.gelu(nn.functional.linear(x, mean_of(self.down), mean_of(self.down_bias)))
        return nn.functional.linear(hidden, mean_of(self.up), mean_of(self.up_bias))


class LoRAExperts(ExpertBank):
    """E low-rank pairs ``(alpha / r) · B A dropout(x)`` (MoLoRA-style); B starts at zero so the model is
    unchanged at init."""

    def __init__(self, d_in: int, d_out: int, rank: int, alpha: float, n_experts: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_experts, self.d_in, self.scaling, self.dropout = n_experts, d_in, alpha / rank, nn.Dropout(dropout)
        self.a = nn.ParameterList(nn.Parameter(torch.randn(rank, d_in) * d_in**-0.5) for _ in range(n_experts))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(d_out, rank)) for _ in range(n_experts))

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(nn.functional.linear(self.dropout(x), self.a[e]), self.b[e]) * self.scaling

    def merged(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(nn.functional.linear(x, mean_of(self.a)), mean_of(self.b)) * self.scaling


class OnePath(nn.Module):
    """A bank of one path used without a router: the unrouted adapter method."""

    def __init__(self, bank: ExpertBank) -> None:
        super().__init__()
        self.bank = bank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bank.expert(0, x)


# "encoder.layer.3.attention.output.dense" → (3, "attention.output.dense"); a LayerDrop wrapper adds "layer."
SITE = re.compile(r"encoder\.layer\.(\d+)\.(?:layer\.)?(.+)$")


def linears(model: nn.Module, every: int, match: Callable[[str], bool]) -> list[tuple[str, str, nn.Linear]]:
    """The linears of every ``every``-th encoder layer (counting from the top) whose name inside the layer
    (``attention.self.value``, ``output.dense`` …) ``match`` accepts, as (``layer3.output.dense``, full name,
    module); found by name, so wrapped layers are found too."""
    chosen = {i for i, _ in _chosen(model, every)}
    found = []
    for name, module in model.named_modules():
        site = SITE.search(name)
        if site and int(site.group(1)) in chosen and isinstance(module, nn.Linear) and match(site.group(2)):
            found.append((f"layer{site.group(1)}.{site.group(2)}", name, module))
    return found


def wrap_linears(
    model: nn.Module,
    every: int,
    match: Callable[[str], bool],
    make_delta: Callable[[nn.Linear], nn.Module],
    on_output: bool,
) -> dict[str, nn.Module]:
    """Replace each matching linear by ``DeltaLinear(linear, make_delta(linear))``; returns the deltas by site."""
    deltas = {}
    for site, name, module in linears(model, every, match):
        parent_name, leaf = name.rsplit(".", 1)
        deltas[site] = delta = make_delta(module)
        setattr(model.get_submodule(parent_name), leaf, DeltaLinear(module, delta, on_output))
    if not deltas:
        raise BenchError(f"no matching linear in the encoder layers of {type(model).__name__}")
    return deltas
