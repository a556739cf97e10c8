"""Cost of a routed FFN layer against the dense FFN and against transformers' Mixtral sparse-MoE block.

MiniLM shape (hidden 384, FFN 1536), batch 32 x 128 tokens, forward + backward, fp32 on this machine's
threads. For E = 4 and E = 16 it times: the dense FFN; our routed layer with a learned top-1 (Switch) router
and with random routing; and ``MixtralSparseMoeBlock`` at top-1 with FFN width 1024, because its SwiGLU
expert has three matrices where ours has two (3 x 384 x 1024 = 2 x 384 x 1536 multiply-adds per token).
All timings are medians of interleaved repeats in this one process; the output is ratios, never seconds.

    .venv/bin/python benchmarks/routed_ffn.py [--repeats 15] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from transformers import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

from harness.routing.context import RoutingContext
from harness.routing.learned import LearnedRouter
from harness.routing.moe import FFNExperts, RoutedBlock
from harness.routing.random import RandomRouter
from harness.run.device import describe_device, resolve_device

HIDDEN, FFN, BATCH, SEQ = 384, 1536, 32, 128


def dense_ffn() -> nn.Module:
    return nn.Sequential(nn.Linear(HIDDEN, FFN), nn.GELU(), nn.Linear(FFN, HIDDEN))


def routed_ffn(n_experts: int, router: str, context: RoutingContext) -> nn.Module:
    base = dense_ffn()
    bank = FFNExperts(base[0], base[2], nn.GELU(), n_experts)
    with torch.no_grad():  # experts that differ, as after some training
        for p in bank.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    chosen = LearnedRouter(HIDDEN, n_experts, 1) if router == "top1" else RandomRouter(n_experts, "token")
    return RoutedBlock(bank, chosen, context, "top")


def mixtral(n_experts: int) -> nn.Module:
    config = MixtralConfig(
        hidden_size=HIDDEN,
        intermediate_size=FFN * 2 // 3,
        num_local_experts=n_experts,
        num_experts_per_tok=1,
        hidden_act="silu",
    )
    block = MixtralSparseMoeBlock(config)
    for p in block.parameters():
        nn.init.normal_(p, std=0.02)
    return block


def step_seconds(module: nn.Module, x: torch.Tensor, device: torch.device) -> float:
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()  # a GPU runs asynchronously: time the kernels, not their launch
    started = time.perf_counter()
    out = module(x)
    out.float().pow(2).mean().backward()
    synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    context = RoutingContext()
    ids = torch.randint(1000, (BATCH, SEQ), device=device)
    x = torch.randn(BATCH, SEQ, HIDDEN, device=device, requires_grad=True)
    print(f"{describe_device(device)}, tokens per step {BATCH * SEQ}, forward+backward, median of {args.repeats}")
    print(
        f"{'E':>3} {'top-1 / dense':>14} {'random / dense':>15} {'mixtral / dense':>16} "
        f"{'top-1 / mixtral':>16} {'random / mixtral':>17}"
    )
    with context.bind(ids, None):
        for n_experts in (4, 16):
            modules = {
                "dense": dense_ffn().to(device),
                "top1": routed_ffn(n_experts, "top1", context).to(device),
                "random": routed_ffn(n_experts, "random", context).to(device),
                "mixtral": mixtral(n_experts).to(device),
            }
            times: dict[str, list[float]] = {name: [] for name in modules}
            for module in modules.values():  # warm-up
                module.train()
                step_seconds(module, x, device)
            for _ in range(args.repeats):  # interleaved, so machine noise hits every variant alike
                for name, module in modules.items():
                    module.zero_grad(set_to_none=True)
                    times[name].append(step_seconds(module, x, device))
            med = {name: statistics.median(t) for name, t in times.items()}
            print(
                f"{n_experts:>3} {med['top1'] / med['dense']:>13.3f}x {med['random'] / med['dense']:>14.3f}x "
                f"{med['mixtral'] / med['dense']:>15.3f}x {med['top1'] / med['mixtral']:>15.3f}x "
                f"{med['random'] / med['mixtral']:>16.3f}x"
            )


if __name__ == "__main__":
    main()
