"""Two stochastic passes and a consistency term (THOR, Zuo et al. 2022, eq. 2; R-Drop uses the same form)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.routing.context import RoutingContext

IGNORE = -100


def symmetric_kl(logits_1: torch.Tensor, logits_2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """½ (KL(p₁‖p₂) + KL(p₂‖p₁)), averaged over the positions that carry a label."""
    if logits_1.dim() == labels.dim() + 1 and labels.dim() > 1:  # token classification: [batch, seq, classes]
        scored = labels != IGNORE
        logits_1, logits_2 = logits_1[scored], logits_2[scored]
    log_p1, log_p2 = F.log_softmax(logits_1.float(), -1), F.log_softmax(logits_2.float(), -1)
    kl_12 = (log_p1.exp() * (log_p1 - log_p2)).sum(-1)
    kl_21 = (log_p2.exp() * (log_p2 - log_p1)).sum(-1)
    return 0.5 * (kl_12 + kl_21).mean()


def two_pass_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], alpha: float, context: RoutingContext
) -> torch.Tensor:
    """CE₁ + CE₂ + α · ½(KL(p₁‖p₂) + KL(p₂‖p₁)) (+ both passes' auxiliary losses): each pass draws its own
    random experts, the consistency term pulls the two predictions together."""
    first = model(**batch)
    aux = sum(context.aux_losses, first.loss.new_zeros(()))
    second = model(**batch)
    aux = aux + sum(context.aux_losses, first.loss.new_zeros(()))
    return first.loss + second.loss + alpha * symmetric_kl(first.logits, second.logits, batch["labels"]) + aux
