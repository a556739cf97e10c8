"""LoRA (Hu et al. 2021) through peft: low-rank updates on the attention projections, backbone frozen.

Routed, each target linear gets E LoRA pairs chosen per token (MoLoRA, Zadouri et al. 2023); peft has no
mixtures, so the routed pairs are our own ``LoRAExperts`` with the same shape, scaling and initialisation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model, set_peft_model_state_dict
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from pydantic import Field
from safetensors.torch import load_file

from harness.errors import BenchError
from harness.methods.base import Method, is_head, methods
from harness.routing.placements import LoRAExperts, Paths, is_path, wrap_linears
from harness.schema import Strict
from harness.tasks.base import TaskFamily


class LoraParams(Strict):
    name: Literal["lora"] = "lora"
    r: Annotated[int, Field(ge=1)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # None: peft's default for the architecture (query and value for BERT-family encoders)
    target_modules: tuple[str, ...] | None = None
    lr: Annotated[float, Field(gt=0)] = 5e-4


@methods.register("lora")
class Lora(Method):
    Params = LoraParams

    def targets(self, model: torch.nn.Module) -> tuple[str, ...]:
        if self.params.target_modules is not None:
            return self.params.target_modules
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
            raise BenchError(f"lora: no default target modules for model type {model_type!r}; set target_modules")
        return tuple(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])

    def paths(self) -> Paths:
        return Paths("lora", self._install)

    def _install(self, model: torch.nn.Module, every: int, n_experts: int, make_block: Any) -> dict[str, Any]:
        p = self.params

        def experts(linear: torch.nn.Linear) -> Any:
            return make_block(LoRAExperts(linear.in_features, linear.out_features, p.r, p.alpha, n_experts, p.dropout))

        targets = self.targets(model)

        def is_target(name: str) -> bool:  # peft's rule: a target names the module or its last parts
            return any(name == t or name.endswith("." + t) for t in targets)

        return wrap_linears(model, every, is_target, experts, on_output=False)

    def trainable(self, model: torch.nn.Module) -> Callable[[str], bool]:
        return lambda name: is_path(name) or is_head(model, name)  # the pretrained weights stay frozen

    def prepare(self, model: torch.nn.Module, family: TaskFamily) -> torch.nn.Module:
        p = self.params
        config = LoraConfig(
            task_type=TaskType[family.peft_task_type],
            r=p.r,
            lora_alpha=p.alpha,
            lora_dropout=p.dropout,
            target_modules=list(self.targets(model)),
        )
        return get_peft_model(model, config)  # task type ⇒ the classifier is trained too (modules_to_save)

    def save(self, model: torch.nn.Module, folder: Path) -> None:
        if isinstance(model, PeftModel):
            model.save_pretrained(folder)  # peft's own format: loadable with PeftModel.from_pretrained
        else:
            super().save(model, folder)

    def load(self, model: torch.nn.Module, folder: Path) -> None:
        if isinstance(model, PeftModel):
            set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
        else:
            super().load(model, folder)
