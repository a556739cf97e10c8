"""Prompt baselines without training: a causal LM reads an instruction, k demonstrations (``icl``) or none
(``zero_shot``), then each test example.

Classification compares the log-probabilities of each label's verbalizer word after the template (as in
GPT-3 and LM-BFF's prompt-based zero-shot); NER asks the model to list entities as ``text (type); …`` and
parses the answer back into word-level IOB2 tags, scored with the same seqeval metrics as every other row.
Demonstrations are drawn with the few-shot sampler (k per class / entity type): the regime's k-shot training
set when the cell has one, else ``shots`` per class from the training split, by the cell's seed.
"""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, model_validator
from tqdm.auto import tqdm

from harness.core.config import Strict
from harness.methods.base import Baseline, methods
from harness.models.language_models import load_lm
from harness.tasks import families
from harness.tasks.base import Predicted, Prompted, TaskFamily
from harness.tasks.fewshot import sample_shots


class PromptFields(Strict):
    lm: str = "smollm2-135m"
    instruction: str | None = None  # None: a default naming the labels or entity types
    # {text} is the example; {label} (classification) or {entities} (NER) ends the template
    template: str | None = None
    verbalizers: dict[str, str] | None = None  # label → word; None: the label itself
    type_names: dict[str, str] | None = None  # NER type → word in the prompt; None: ner.TYPE_NAMES
    max_new_tokens: Annotated[int, Field(ge=1)] = 48
    batch_size: Annotated[int, Field(ge=1)] = 16

    @model_validator(mode="after")
    def _template_ends_with_answer(self) -> PromptFields:
        if self.template is not None:
            if self.template.count("{text}") != 1:
                raise ValueError("template must contain {text} exactly once")
            if not self.template.rstrip().endswith(("{label}", "{entities}")):
                raise ValueError("template must end with {label} (classification) or {entities} (NER)")
        return self


class PromptParams(PromptFields):
    name: Literal["icl"] = "icl"
    shots: Annotated[int, Field(ge=1)] = 4  # under the `full` regime: demonstrations per class / entity type


class ZeroShotParams(PromptFields):
    name: Literal["zero_shot"] = "zero_shot"


@methods.register("icl")
class InContext(Baseline):
    Params = PromptParams

    def conflict(self, task_type: str, regime: Any) -> str | None:
        slot = families.get(task_type).answer_slot
        template = self.params.template
        if template is not None and not template.rstrip().endswith(slot):
            return f"a {task_type} template must end with {slot}"
        return None

    def total_params(self, device: torch.device) -> int:
        return sum(p.numel() for p in load_lm(self.params.lm, device).model.parameters())

    def demonstrations(self, data: Any, task_type: str, seed: int) -> list[Any]:
        pool = data.train.examples
        if data.shots is not None:  # the regime's k-shot training set is the demonstration pool
            chosen = list(pool)
        else:
            picked = sample_shots(pool, families.get(task_type).strata, self.params.shots, seed)
            chosen = [pool[i] for i in picked]
        random.Random(seed).shuffle(chosen)  # classes interleaved, in an order fixed by the seed
        return chosen

    def filled(self, family: TaskFamily, example: Any, answer: str | None) -> str:
        """The template for ``example``; with ``answer`` None, cut just before the answer (the query)."""
        template = self.params.template or family.default_template
        head = template[: template.rindex(family.answer_slot)].replace("{text}", family.prompt_text(example))
        return head.rstrip(" ") if answer is None else head + answer

    def prefix(self, data: Any, task_type: str, seed: int) -> str:
        """The instruction and the demonstrations with their answers, shared by every query."""
        family = families.get(task_type)
        shown = [
            self.filled(family, example, family.answer(example, data.labels, self.params))
            for example in self.demonstrations(data, task_type, seed)
        ]
        instruction = self.params.instruction or family.instruction(data.labels, self.params)
        return "\n\n".join([instruction, *shown]) + "\n\n"

    def predict(
        self, data: Any, task_type: str, split: str, seed: int, device: torch.device, progress: bool = False
    ) -> Predicted:
        family, examples = families.get(task_type), getattr(data, split).examples
        # disable=None: a bar only on a terminal (an NER cell generates for minutes), never in a CI log
        with tqdm(total=len(examples), desc=self.params.name, leave=False, disable=None if progress else True) as bar:
            prompted = Prompted(
                lm=load_lm(self.params.lm, device),
                prefix=self.prefix(data, task_type, seed),
                queries=[self.filled(family, example, None) for example in examples],
                template=self.params.template or family.default_template,
                params=self.params,
                advance=bar.update,
            )
            return family.prompt_predict(prompted, getattr(data, split), data.labels)


@methods.register("zero_shot")
class ZeroShot(InContext):
    """The instruction and the template only: no demonstrations, so nothing depends on the seed."""

    Params = ZeroShotParams
    seeded = False

    def conflict(self, task_type: str, regime: Any) -> str | None:
        if regime.few_shot:
            return "zero_shot sees no training examples; a few-shot regime would not change it"
        return super().conflict(task_type, regime)

    def demonstrations(self, data: Any, task_type: str, seed: int) -> list[Any]:
        return []
