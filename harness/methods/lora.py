"""LoRA (Hu et al. 2021) through peft: low-rank updates on the backbone's linear layers, backbone frozen.

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

from harness.core.config import Strict
from harness.core.errors import BenchError
from harness.methods.base import Method, is_head, methods
from harness.routing.placements import LoRAExperts, Paths, is_path, linears, wrap_linears
from harness.tasks.base import TaskFamily


class LoraParams(Strict):
    name: Literal["lora"] = "lora"
    r: Annotated[int, Field(ge=1)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # "all-linear": every linear layer of the backbone, attention and FFN (the task head trains whole), the usual
    # choice for encoders on token tasks (Dettmers et al. 2023; peft's target_modules="all-linear"); None: peft's
    # default for the architecture (query and value for BERT-family encoders, as in Hu et al. 2021); or names
    target_modules: tuple[str, ...] | Literal["all-linear"] | None = "all-linear"
    lr: Annotated[float, Field(gt=0)] = 5e-4  # Hu et al. 2021, RoBERTa-base on GLUE (4e-4 to 5e-4)


@methods.register("lora")
class Lora(Method):
    Params = LoraParams

    def _match(self, model: torch.nn.Module) -> Callable[[str], bool]:
        """Which linears of an encoder layer get LoRA, by their name inside the layer (``attention.self.query``)."""
        targets = self.params.target_modules
        if targets == "all-linear":
            return lambda name: True
        if targets is None:
            model_type = getattr(getattr(model, "config", None), "model_type", None)
            if model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
                raise BenchError(f"lora: no default target modules for model type {model_type!r}; set target_modules")
            targets = tuple(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])
        names = targets
        return lambda name: any(name == t or name.endswith("." + t) for t in names)  # peft's rule: a name's last parts

    def targets(self, model: torch.nn.Module) -> list[str]:
        """The full names of the linears that get LoRA: one selection for peft and for routed LoRA."""
        found = [name for _, name, _ in linears(model, 1, self._match(model))]
        if not found:
            raise BenchError(
                f"lora: no linear in the encoder layers (encoder.layer.N, BERT family) of {type(model).__name__} "
                f"matches target_modules={self.params.target_modules!r}"
            )
        return found

    def paths(self) -> Paths:
        return Paths("lora", self._install)

    def _install(self, model: torch.nn.Module, every: int, n_experts: int, make_block: Any) -> dict[str, Any]:
        p = self.params

        def experts(linear: torch.nn.Linear) -> Any:
            return make_block(LoRAExperts(linear.in_features, linear.out_features, p.r, p.alpha, n_experts, p.dropout))

        return wrap_linears(model, every, self._match(model), experts, on_output=False)

    def trainable(self, model: torch.nn.Module) -> Callable[[str], bool]:
        return lambda name: is_path(name) or is_head(model, name)  # the pretrained weights stay frozen

    def prepare(self, model: torch.nn.Module, family: TaskFamily) -> torch.nn.Module:
        p = self.params
        config = LoraConfig(
            task_type=TaskType[family.peft_task_type],
            r=p.r,
            lora_alpha=p.alpha,
            lora_dropout=p.dropout,
            target_modules=self.targets(model),
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
