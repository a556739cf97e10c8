"""Prompt baselines: the NER answer parser, verbalizer scoring, demonstrations, and the packaged SmolLM2
end to end through the command line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from harness.methods import build_method
from harness.methods.prompting import PromptParams, ZeroShotParams
from harness.models.backbones import packaged_minilm
from harness.models.language_models import CausalLM
from harness.tasks.ner import parse_entities, parse_rate

from .conftest import bench, toy_ner_lines

TYPES = {"person": "PER", "per": "PER", "location": "LOC", "loc": "LOC", "organisation": "ORG", "org": "ORG"}
WORDS = ["Peter", "Blackburn", "of", "the", "EU", "visited", "New", "York", "and", "York", "on", "Monday"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Peter Blackburn (person); EU (organisation)", {0: "B-PER", 1: "I-PER", 4: "B-ORG"}),
        (" New York (location); York (location)", {6: "B-LOC", 7: "I-LOC", 9: "B-LOC"}),  # 2nd York: next free
        ("eu (ORG)", {4: "B-ORG"}),  # case-insensitive span, type given as its code
        ("EU (organisation).", {4: "B-ORG"}),  # a trailing full stop
        ("none", {}),
        ("", {}),
        ("EU organisation; Monday", {}),  # no "(type)"
        ("Paris (location); EU (team)", {}),  # not in the sentence; unknown type
        ("New York (location); New York (location)", {6: "B-LOC", 7: "I-LOC"}),  # no second free occurrence
        ("York (location); New York (location)", {7: "B-LOC"}),  # the overlapping span is dropped
        ("EU (organisation); ; (person); Peter (per", {4: "B-ORG"}),  # empty and unclosed items
    ],
)
def test_ner_answer_parser(answer, expected):
    tags = parse_entities(answer, WORDS, TYPES)
    assert tags == [expected.get(i, "O") for i in range(len(WORDS))]


def test_parse_rate_counts_spans_nones_and_unparsed_answers():
    answers = ["New York (location)", "None.", "the city of lights", "", "Peter (planet)"]
    tags = [parse_entities(a, WORDS, TYPES) for a in answers]
    assert parse_rate(answers, tags) == {"answers": 5, "with_entities": 1, "said_none": 2, "unparsed": 2}


class ScriptedLM:
    """Returns hand-chosen log-probabilities per continuation and records what it was asked."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table, self.prefixes = table, []

    def score(self, prefix: str, pairs: list[tuple[str, str]], batch_size: int, advance=None) -> list[float]:
        self.prefixes.append(prefix)
        return [self.table[pair] for pair in pairs]


def sst_data(train: list[tuple[str, str]], test: list[tuple[str, str]]) -> SimpleNamespace:
    def split(rows):
        examples = [{"text": t, "label": lab, "line": i} for i, (t, lab) in enumerate(rows)]
        return SimpleNamespace(examples=examples, gold=[int(lab) for _, lab in rows])

    return SimpleNamespace(train=split(train), test=split(test), labels=["0", "1"], shots=None)


def test_verbalizer_scoring_picks_the_most_likely_word_and_reports_the_per_byte_choice_beside(monkeypatch):
    """Template and verbalizers become (context, " word") pairs; the label with the higher summed log p wins (the
    headline, lm-evaluation-harness's acc); per byte of the word (acc_norm) is reported beside it."""
    lm = ScriptedLM(
        {
            ("Review: loved it\nSentiment:", " great"): -0.2,
            ("Review: loved it\nSentiment:", " terrible"): -2.3,
            # summed, " great" wins (-1.9 > -2.0); per byte, " terrible" does (-2.0 / 9 > -1.9 / 6)
            ("Review: dull\nSentiment:", " great"): -1.9,
            ("Review: dull\nSentiment:", " terrible"): -2.0,
        }
    )
    monkeypatch.setattr("harness.methods.prompting.load_lm", lambda name, device: lm)
    method = build_method(
        ZeroShotParams(
            template="Review: {text}\nSentiment: {label}",
            verbalizers={"0": "terrible", "1": "great"},
            instruction="Is the review great or terrible?",
        )
    )
    data = sst_data([("fine", "1")], [("loved it", "1"), ("dull", "0")])
    predicted = method.predict(data, "classification", "test", seed=1, device=torch.device("cpu"))
    assert predicted.values == [1, 1] and predicted.metrics == {"accuracy_norm": 1.0}
    assert lm.prefixes == ["Is the review great or terrible?\n\n"]


def test_in_context_demonstrations_are_k_per_class_and_fixed_by_seed(monkeypatch):
    train = [(f"good {i}", "1") for i in range(6)] + [(f"bad {i}", "0") for i in range(6)]
    params = PromptParams(shots=2, template="Review: {text}\nSentiment: {label}", verbalizers={"0": "bad", "1": "good"})
    method = build_method(params)
    prefix = method.prefix(sst_data(train, []), "classification", seed=3)
    demos = prefix.split("\n\n")[1:-1]
    assert (
        sum(d.endswith("Sentiment: good") for d in demos) == 2 and sum(d.endswith("Sentiment: bad") for d in demos) == 2
    )
    assert prefix == method.prefix(sst_data(train, []), "classification", seed=3)
    assert prefix != method.prefix(sst_data(train, []), "classification", seed=4)


def tiny_lm() -> CausalLM:
    """A randomly initialised 2-layer Llama with the MiniLM word-piece tokenizer; weights drawn wide enough that
    its greedy tokens depend on positions and context (at the default 0.02 they barely do)."""
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.2,
    )
    return CausalLM(tokenizer, LlamaForCausalLM(config), torch.device("cpu"))


def test_causal_lm_score_with_a_shared_prefix_equals_scoring_the_whole_text():
    """The prefix is encoded once and its cache reused per row, rows are batched by length and padded on the left,
    one-token continuations of the same context share a row; the sums must equal plain full-text scoring, whatever
    the batch size."""
    lm = tiny_lm()
    prefix = "a review follows ."
    pairs = [("it was", " great"), ("it was really quite", " bad and dull"), ("so", " bad"), ("it was", " fine")]
    rows = []  # the rows of every forward pass

    def count(_module, args, kwargs):
        rows.append(len(args[0] if args else kwargs["input_ids"]))

    hook = lm.model.register_forward_pre_hook(count, with_kwargs=True)
    got = lm.score(prefix, pairs, batch_size=3)
    hook.remove()
    assert sum(rows) == 1 + 3  # the prefix once, then "it was" (great, fine), "it was really quite bad and", "so"
    assert lm.score(prefix, pairs[::-1], batch_size=2) == pytest.approx(got[::-1], abs=1e-5)
    for (context, continuation), score in zip(pairs, got, strict=True):
        head = lm.encode(prefix) + lm.encode(context)
        tail = lm.encode(continuation)
        with torch.no_grad():
            log_probs = lm.model(torch.tensor([head + tail])).logits[0].log_softmax(-1)
        expected = sum(float(log_probs[len(head) - 1 + i, t]) for i, t in enumerate(tail))
        assert score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("stop", ["\n", "o", "s"])
def test_batched_generation_with_early_exit_equals_generating_each_query_alone(stop):
    """Length-sorted batches, left padding, and rows leaving the batch (and its KV cache) as soon as they emit the
    stop: each answer must be what plain `generate` gives for that query alone, cut at the stop."""
    lm = tiny_lm()
    prefix = "list the words :"
    queries = [f"{' '.join(['some words here'] * (i % 4 + 1))} number {i} :" for i in range(11)]
    got = lm.generate(prefix, queries, max_new_tokens=12, batch_size=4, stop=stop)
    alone = []
    for query in queries:
        ids = torch.tensor([lm.encode(prefix) + lm.encode(query)])
        with torch.no_grad():
            out = lm.model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
        alone.append(lm.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).split(stop, 1)[0])
    assert got == alone
    cut = {len(lm.encode(answer)) for answer in got}
    if stop != "\n":  # the random model never writes a newline; with these stops rows leave at different steps
        assert len(cut) > 2, cut


def test_prompt_baselines_run_end_to_end_with_the_packaged_smollm2(tmp_path, write):
    """icl, zero_shot and majority through `bench run`: the GGUF model is converted once into the cache."""
    for split, n, seed in (("train", 40, 0), ("validation", 5, 1), ("test", 6, 2)):
        (tmp_path / f"{split}.conll").write_text(toy_ner_lines(n, seed))
    rows = ["sentence\tlabel"] + [f"{w} film\t{lab}" for w, lab in [("great", 1), ("awful", 0)] * 10]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.tsv").write_text("sentence\tlabel\na great film\t1\nan awful film\t0\n")
    suite = write(
        "suite.yaml",
        """
        name: prompts
        data_dir: .
        tasks:
          - name: toy-ner
            type: ner
            format: conll
            files: {train: train.conll, validation: validation.conll, test: test.conll}
          - name: toy-cls
            type: classification
            format: tsv
            files: {train: train.tsv, test: test.tsv}
            validation_from_train: 4
        backbones: [tiny-bert]
        seeds: [1]
        methods:
          - {name: icl, shots: 1, max_new_tokens: 16, verbalizers: {"0": negative, "1": positive}}
          - {name: zero_shot, max_new_tokens: 16, verbalizers: {"0": negative, "1": positive}}
          - majority
        """,
    )
    result = bench("run", str(suite), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "cells").glob("*.json")]
    assert sorted((r["config"]["task"]["name"], r["config"]["method"]["name"]) for r in records) == [
        (task, method) for task in ("toy-cls", "toy-ner") for method in ("icl", "majority", "zero_shot")
    ]
    for r in records:
        assert r["status"] == "done" and r["cost"]["trainable_params"] == 0
        headline = r["metrics"]["headline"]
        assert 0 <= r["metrics"]["test"][headline] <= 1
        if r["config"]["method"]["name"] != "majority":
            assert r["cost"]["total_params"] > 100e6  # SmolLM2-135M answered, not a stand-in
        if r["config"]["method"]["name"] != "majority" and r["config"]["task"]["name"] == "toy-ner":
            # every generation is kept beside the parsed tags, and the record says what they were
            generations = json.loads((tmp_path / "out" / "generations" / f"{r['config_hash']}.json").read_text())
            rate = r["metrics"]["test"]["generations"]
            assert len(generations) == rate["answers"] == 6 and all(isinstance(g, str) for g in generations)
            assert rate["with_entities"] + rate["said_none"] + rate["unparsed"] == 6
        if r["config"]["method"]["name"] != "majority" and r["config"]["task"]["name"] == "toy-cls":
            assert 0 <= r["metrics"]["test"]["accuracy_norm"] <= 1
    table = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "| icl max_new_tokens=16 shots=1 " in table and "| zero_shot max_new_tokens=16 " in table
