"""How weights adapt: one module per method, each registered by name with its own parameter model.

A method decides which weights train (``prepare``) and, when a routing strategy makes its paths parallel,
where those paths go and what shape they have (``paths``). Methods that do not train at all (prompt
baselines, majority) implement ``predict`` instead and never meet the training loop.
"""

# ruff: noqa: I001 (registration order)
from harness.methods.base import Baseline, Method, build_method, describe, is_head, methods, trainable_only

# each module registers itself on import; the order here is the order `bench list` shows
from harness.methods import full, lora, adapter, prompt_tuning, prompting, majority

__all__ = [
    "Baseline",
    "Method",
    "adapter",
    "build_method",
    "describe",
    "full",
    "is_head",
    "lora",
    "majority",
    "methods",
    "prompt_tuning",
    "prompting",
    "trainable_only",
]
