"""How a path is chosen: one class per strategy, each registered by name with its own parameter model."""

# ruff: noqa: I001 (registration order)
from harness.routing.base import Routing, build_routing, describe, routers

# each module registers itself on import; the order here is the order `bench list` shows
from harness.routing import dense, random, hashing, learned, fixed_random, thor, layerdrop

__all__ = [
    "Routing",
    "build_routing",
    "dense",
    "describe",
    "fixed_random",
    "hashing",
    "layerdrop",
    "learned",
    "random",
    "routers",
    "thor",
]
