"""Bottleneck adapters: a small ``up(gelu(down(h)))`` path added after a sublayer's output projection,
before dropout, the residual and LayerNorm; the backbone is frozen.

``houlsby`` (Houlsby et al. 2019) puts one after the attention output and one after the FFN output and
trains the LayerNorms too, as the paper does; ``pfeiffer`` (Pfeiffer et al. 2021) keeps only the one after
the FFN. AdapterHub's ``adapters`` package would do this, but it pins transformers 4.x, so the adapter is
written here (``AdapterExperts`` with one path). Routed, each site holds E adapters (AdaMix, Wang et al. 2022),
optionally sharing the up-projection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from harness.core.config import Strict
from harness.methods.base import Method, is_head, methods, trainable_only
from harness.routing.placements import AdapterExperts, OnePath, Paths, is_path, wrap_linears
from harness.tasks.base import TaskFamily

SITES = {"houlsby": ("attention.output.dense", "output.dense"), "pfeiffer": ("output.dense",)}


class AdapterParams(Strict):
    name: Literal["adapter"] = "adapter"
    style: Literal["houlsby", "pfeiffer"] = "houlsby"
    reduction: Annotated[int, Field(ge=1)] = 16  # bottleneck = hidden size / reduction
    share_up: bool = False  # routed only: the E adapters of a site share one up-projection (AdaMix)
    lr: Annotated[float, Field(gt=0)] = 1e-3


@methods.register("adapter")
class Adapter(Method):
    Params = AdapterParams

    def _install(self, model: torch.nn.Module, every: int, make: Any) -> dict[str, Any]:
        sites = SITES[self.params.style]
        return wrap_linears(model, every, lambda name: name in sites, make, on_output=True)

    def paths(self) -> Paths:
        p = self.params

        def install(model: torch.nn.Module, every: int, n_experts: int, make_block: Any) -> dict[str, Any]:
            experts = lambda linear: make_block(AdapterExperts(linear.out_features, p.reduction, n_experts, p.share_up))  # noqa: E731
            return self._install(model, every, experts)

        return Paths("adapter", install)

    def prepare(self, model: torch.nn.Module, family: TaskFamily) -> torch.nn.Module:
        self._install(model, 1, lambda linear: OnePath(AdapterExperts(linear.out_features, self.params.reduction, 1)))
        return trainable_only(model, self.trainable(model))

    def trainable(self, model: torch.nn.Module) -> Callable[[str], bool]:
        layer_norms = self.params.style == "houlsby"
        return lambda name: is_path(name) or is_head(model, name) or (layer_norms and "LayerNorm" in name)
