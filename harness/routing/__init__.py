"""How a path is chosen: one class per strategy, each registered by name with its own parameter model."""

from __future__ import annotations

from typing import Any

import torch

from harness.registry import Registry
from harness.schema import Configurable


class Routing(Configurable):
    """A routing strategy owns its suite parameters and turns a dense model into a routed one."""

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        raise NotImplementedError


routers: Registry[type[Routing]] = Registry("routing strategy")


def build_routing(params: Any) -> Routing:
    return routers.get(params.strategy)(params)


from harness.routing import dense  # noqa: E402  (registers itself)

__all__ = ["Routing", "build_routing", "dense", "routers"]
