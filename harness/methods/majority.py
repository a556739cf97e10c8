"""Floors that every table needs: the majority class (for NER: every word gets the most frequent tag, O),
and for NER the most frequent training tag of each word; each task family defines its rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from harness.core.config import Strict
from harness.methods.base import Baseline, methods
from harness.tasks import families
from harness.tasks.base import Predicted

if TYPE_CHECKING:
    import torch


class MajorityParams(Strict):
    name: Literal["majority"] = "majority"
    rule: Literal["class", "word"] = "class"  # which rules a task type has: its family's majority_rules


@methods.register("majority")
class Majority(Baseline):
    Params = MajorityParams
    seeded = False

    def conflict(self, task_type: str, regime: Any) -> str | None:
        rules = families.get(task_type).majority_rules
        if self.params.rule not in rules:
            return (
                f"majority rule {self.params.rule!r} is not defined for {task_type} tasks (rules: {', '.join(rules)})"
            )
        if regime.few_shot:
            return "majority reads the whole training split; it has no few-shot regime"
        return None

    def predict(
        self, data: Any, task_type: str, split: str, seed: int, device: torch.device, progress: bool = False
    ) -> Predicted:
        return Predicted(families.get(task_type).majority(data.train, getattr(data, split).examples, self.params.rule))
