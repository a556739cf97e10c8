"""Prompt tuning (Lester et al. 2021) through peft: trainable virtual-token embeddings prepended to the input
of a frozen encoder; with the classification head, nothing else trains. Classification tasks only."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from peft import PromptTuningConfig, TaskType, get_peft_model
from pydantic import Field

from harness.core.config import Strict
from harness.methods.base import Method, methods
from harness.tasks.base import TaskFamily


class PromptTuningParams(Strict):
    name: Literal["prompt_tuning"] = "prompt_tuning"
    virtual_tokens: Annotated[int, Field(ge=1, le=512)] = 20
    # vocab: start from the embeddings of randomly drawn vocabulary tokens (the paper's better initialisation);
    # random: peft's N(0, 1) initialisation
    init: Literal["vocab", "random"] = "vocab"
    lr: Annotated[float, Field(gt=0)] = 1e-2


@methods.register("prompt_tuning")
class PromptTuning(Method):
    Params = PromptTuningParams
    task_types = ("classification",)

    def prepare(self, model: torch.nn.Module, family: TaskFamily) -> torch.nn.Module:
        p = self.params
        config = PromptTuningConfig(task_type=TaskType[family.peft_task_type], num_virtual_tokens=p.virtual_tokens)
        peft_model = get_peft_model(model, config)
        if p.init == "vocab":
            vocabulary = peft_model.word_embeddings.weight
            drawn = torch.randint(vocabulary.shape[0], (p.virtual_tokens,))
            with torch.no_grad():
                peft_model.prompt_encoder["default"].embedding.weight.copy_(vocabulary[drawn])
        return peft_model
