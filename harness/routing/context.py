"""What routers need besides hidden states (token ids, the padding mask), passed in one ``with`` block.

Routing inputs travel explicitly: the routed model binds them for exactly one forward pass and clears them
in ``finally`` (no forward hooks left behind, no stale ids: peft issues #2761 and #2786).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class RoutingContext:
    token_ids: torch.Tensor | None = None  # [batch, seq]
    mask: torch.Tensor | None = None  # [batch, seq], 1 for real tokens
    aux_losses: list[torch.Tensor] = field(default_factory=list)

    @contextmanager
    def bind(self, token_ids: torch.Tensor, mask: torch.Tensor | None) -> Iterator[RoutingContext]:
        self.token_ids = token_ids
        self.mask = torch.ones_like(token_ids) if mask is None else mask
        self.aux_losses = []
        try:
            yield self
        finally:
            self.token_ids, self.mask = None, None

    def flat_mask(self) -> torch.Tensor:
        if self.mask is None:
            raise RuntimeError("routed layer called outside RoutingContext.bind (no token ids bound)")
        return self.mask.reshape(-1).bool()

    def flat_token_ids(self) -> torch.Tensor:
        if self.token_ids is None:
            raise RuntimeError("routed layer called outside RoutingContext.bind (no token ids bound)")
        return self.token_ids.reshape(-1)
