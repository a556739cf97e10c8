"""What makes the NER prompt baselines fast: SmolLM2-135M lists the entities of CoNLL-2003 test sentences after the
ner suite's 1-shot prompt, four ways, in one process on the same sentences:

- reference: `transformers`' `generate` (greedy, ``stop_strings``) on batches in file order — the code before;
- sorted: the same `generate` on batches of similar token length (less padding);
- early exit: routebench's loop in file order, where a row leaves its batch once it has ended its line;
- both: routebench's `CausalLM.generate` as the suite runs it.

Prints seconds, the speed-up against the reference, and how many answers equal the reference's.

    .venv/bin/python benchmarks/prompt_speed.py [--sentences 512] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from harness.methods.prompting import InContext, PromptParams
from harness.models.language_models import CausalLM, load_lm
from harness.tasks import builtin_tasks, families
from harness.tasks.data import read_task


def reference(lm: CausalLM, prefix: str, queries: list[str], max_new_tokens: int) -> list[str]:
    """One batch through `generate`, as routebench did before: left padding, the shared prefix's cache, and
    ``stop_strings`` (the whole batch runs until its last row has ended its line)."""
    lm.tokenizer.padding_side = "left"
    batch = lm.tokenizer(queries, return_tensors="pt", padding=True, add_special_tokens=False)
    _, cache = lm._prefix(prefix, len(queries))
    prefix_ids = torch.tensor([lm.encode(prefix)]).repeat(len(queries), 1)
    ids = torch.cat([prefix_ids, batch["input_ids"]], 1)
    with torch.inference_mode():
        out = lm.model.generate(
            input_ids=ids,
            attention_mask=torch.cat([torch.ones_like(prefix_ids), batch["attention_mask"]], 1),
            cache=cache,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stop_strings=["\n"],
            tokenizer=lm.tokenizer,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    return [t.split("\n", 1)[0] for t in lm.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)]


def batched(queries: list[str], order: list[int], size: int, answer) -> list[str]:
    answers = [""] * len(queries)
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        for i, text in zip(rows, answer([queries[i] for i in rows]), strict=True):
            answers[i] = text
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=512, help="the first N sentences of the test split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    spec = builtin_tasks.get("conll2003")
    task = read_task(spec, Path(os.environ.get("BENCH_DATA_DIR", "../shared/datasets")))
    method = InContext(PromptParams(shots=1, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size))
    data = SimpleNamespace(train=SimpleNamespace(examples=task.splits["train"]), labels=task.labels, shots=None)
    prefix = method.prefix(data, "ner", seed=1)
    family = families.get("ner")
    queries = [method.filled(family, example, None) for example in task.splits["test"][: args.sentences]]
    lm = load_lm("smollm2-135m", torch.device("cpu"))
    lengths = [len(lm.encode(q)) for q in queries]
    by_length = sorted(range(len(queries)), key=lambda i: (-lengths[i], i))
    in_file = list(range(len(queries)))
    size, new = args.batch_size, args.max_new_tokens

    def early_exit(rows: list[str]) -> list[str]:
        return lm.generate(prefix, rows, new, batch_size=len(rows))  # one batch: no reordering across batches

    ways = {
        "reference (generate, file order)": lambda: batched(
            queries, in_file, size, lambda q: reference(lm, prefix, q, new)
        ),
        "sorted (generate, by length)": lambda: batched(
            queries, by_length, size, lambda q: reference(lm, prefix, q, new)
        ),
        "early exit (file order)": lambda: batched(queries, in_file, size, early_exit),
        "both (CausalLM.generate)": lambda: lm.generate(prefix, queries, new, batch_size=size),
    }
    print(
        f"{len(queries)} CoNLL-2003 test sentences, prefix {len(lm.encode(prefix))} tokens, batch {size}, "
        f"max_new_tokens {new}, {torch.get_num_threads()} threads\n"
    )
    print("| way | seconds | speed-up | answers equal to the reference's |")
    print("| --- | --- | --- | --- |")
    reference(lm, prefix, queries[:size], new)  # warm-up: first-call allocations and `stop_strings` tables
    lm.generate(prefix, queries[:size], new, batch_size=size)
    base_seconds, base_answers = 0.0, []
    for name, run in ways.items():
        start = time.perf_counter()
        answers = run()
        seconds = time.perf_counter() - start
        if not base_answers:
            base_seconds, base_answers = seconds, answers
        same = sum(a == b for a, b in zip(answers, base_answers, strict=True))
        print(f"| {name} | {seconds:.1f} | {base_seconds / seconds:.2f}× | {same}/{len(queries)} |", flush=True)


if __name__ == "__main__":
    main()
