"""Where the parallel paths go in a BERT-family encoder: the FFN, bottleneck adapters, LoRA pairs, layers.

Each ``install_*`` swaps modules in place and returns the routed blocks it created, by layer name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.errors import BenchError
from harness.routing.moe import ExpertBank, FFNExperts, RoutedBlock, mean_of

MakeBlock = Callable[[ExpertBank], RoutedBlock]


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
    """``out = base(x) + routed Δ``: the base linear is kept, the routed block adds to it (peft-style wrapper).

    ``on_output`` says what the experts read: the base output (a bottleneck adapter after the projection,
    Houlsby/AdaMix) or the base input (LoRA).
    """

    def __init__(self, base: nn.Linear, block: RoutedBlock, on_output: bool) -> None:
        super().__init__()
        self.base, self.block, self.on_output = base, block, on_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return out + self.block(out if self.on_output else x)


class AdapterExperts(ExpertBank):
    """E bottleneck adapters ``up(gelu(down(h)))``; ``up`` starts at zero so the model is unchanged at init.
    With ``share_up`` all experts share one up-projection (AdaMix's parameter-saving variant)."""

    def __init__(self, d: int, reduction: int, n_experts: int, share_up: bool) -> None:
        super().__init__()
        self.n_experts, bottleneck, n_up = n_experts, max(1, d // reduction), 1 if share_up else n_experts
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
    """E low-rank pairs ``(alpha / r) · B A x`` (MoLoRA-style); B starts at zero so the model is unchanged."""

    def __init__(self, d_in: int, d_out: int, rank: int, alpha: float, n_experts: int) -> None:
        super().__init__()
        self.n_experts, self.scaling = n_experts, alpha / rank
        self.a = nn.ParameterList(nn.Parameter(torch.randn(rank, d_in) * d_in**-0.5) for _ in range(n_experts))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(d_out, rank)) for _ in range(n_experts))

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(nn.functional.linear(x, self.a[e]), self.b[e]) * self.scaling

    def merged(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(nn.functional.linear(x, mean_of(self.a)), mean_of(self.b)) * self.scaling


def install_adapters(
    model: nn.Module, every: int, n_experts: int, make_block: MakeBlock, reduction: int, share_up: bool
) -> dict[str, RoutedBlock]:
    """A routed adapter after each chosen layer's FFN projection (before dropout, residual and LayerNorm)."""
    blocks = {}
    for i, layer in _chosen(model, every):
        base = layer.output.dense
        bank = AdapterExperts(base.out_features, reduction, n_experts, share_up)
        blocks[f"layer{i}.adapter"] = block = make_block(bank)
        layer.output.dense = DeltaLinear(base, block, on_output=True)
    return blocks


def install_lora(
    model: nn.Module,
    every: int,
    n_experts: int,
    make_block: MakeBlock,
    rank: int,
    alpha: float,
    targets: tuple[str, ...],
) -> dict[str, RoutedBlock]:
    """Routed LoRA experts on each chosen layer's target linears (by attribute name, e.g. query, value)."""
    blocks = {}
    for i, layer in _chosen(model, every):
        for name, module in list(layer.named_modules()):
            leaf = name.rsplit(".", 1)[-1]
            if leaf in targets and isinstance(module, nn.Linear):
                parent = layer.get_submodule(name.rsplit(".", 1)[0]) if "." in name else layer
                bank = LoRAExperts(module.in_features, module.out_features, rank, alpha, n_experts)
                blocks[f"layer{i}.{name}"] = block = make_block(bank)
                setattr(parent, leaf, DeltaLinear(module, block, on_output=False))
    if not blocks:
        raise BenchError(f"no linear named {', '.join(targets)} in the encoder layers for LoRA experts")
    return blocks
