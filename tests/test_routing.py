"""Routing invariants users rely on: upcycling is exact, random is uniform, hash is balanced, gradients go
where they should, Switch's loss has its documented minimum, merge is exact, THOR's loss is its formula."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForTokenClassification, BertConfig

from harness.methods import build_method, methods
from harness.records.record import RoutingStats
from harness.records.store import ResultStore
from harness.routing import build_routing, routers
from harness.routing.consistency import symmetric_kl, two_pass_loss
from harness.routing.context import RoutingContext
from harness.routing.hashing import balanced_hash
from harness.routing.learned import LearnedRouter, capacity_keep, load_balancing_loss
from harness.routing.moe import ROW_MULTIPLE, FFNExperts, Route, RoutedBlock, Tokens, dispatch
from harness.routing.random import RandomRouter
from harness.run.execute import assemble
from harness.run.runner import RunOptions, run_cells
from harness.suite.expand import expand, load_suite
from harness.tasks import families

QUIET = RunOptions(progress=False)

EXPERT_STRATEGIES = [name for name in routers if name not in ("none", "layerdrop")]


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=120,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
    )
    return AutoModelForTokenClassification.from_config(config)


def batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 120, (3, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padding must be ignored by routers and never change real positions
    ids[mask == 0] = 0
    labels = torch.randint(0, 3, (3, 7), generator=g)
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def params(strategy: str, **fields) -> object:
    return routers.get(strategy).Params.model_validate({"strategy": strategy, **fields})


def routed(strategy: str, method: str = "full", seed: int = 0, **fields) -> tuple[object, torch.nn.Module]:
    """The tiny model routed by ``strategy`` and prepared by ``method`` (its placement decides the paths)."""
    routing = build_routing(params(strategy, **fields))
    chosen = build_method(methods.get(method).Params())
    return routing, assemble(tiny_model(seed), chosen, routing, families.get("ner"))


def _modes(strategy: str) -> list[str]:
    return list(routers.get(strategy).Params.model_fields["inference"].annotation.__args__)


@pytest.mark.parametrize(
    ("strategy", "inference", "method"),
    [(s, m, "full") for s in EXPERT_STRATEGIES for m in _modes(s)]
    + [(s, _modes(s)[0], method) for s in ("random", "switch") for method in ("adapter", "lora")],
)
def test_routed_model_equals_dense_at_init(strategy, inference, method):
    """Upcycled FFN experts (full), and adapter / LoRA experts whose up / B start at zero."""
    dense = tiny_model().eval()
    _, model = routed(strategy, method, inference=inference)
    model.eval()
    inputs = batch()
    with torch.no_grad():
        expected = dense(**inputs).logits
        got = model(**inputs).logits
    real = inputs["attention_mask"].bool()
    assert torch.allclose(got[real], expected[real], atol=1e-6), (got - expected).abs().max()


def test_layerdrop_with_p_zero_equals_dense_in_training_too():
    dense = tiny_model().train()
    _, model = routed("layerdrop", p=0.0)
    model.train()
    inputs = batch()
    assert torch.allclose(model(**inputs).logits, dense(**inputs).logits, atol=1e-6)


def test_layerdrop_skips_about_p_of_layer_calls():
    routing, model = routed("layerdrop", p=0.5)
    model.train()
    torch.manual_seed(0)
    routing.start_epoch()
    for _ in range(200):
        model(**batch())
    rates = routing.telemetry()["skip_rate"]
    assert all(0.4 < r < 0.6 for r in rates), rates


def test_random_router_is_uniform_and_reproducible():
    router = RandomRouter(4, "token")
    tokens = Tokens(
        ids=torch.zeros(40_000, dtype=torch.long), sequence=torch.zeros(40_000, dtype=torch.long), n_sequences=1
    )
    torch.manual_seed(123)
    first = router(torch.zeros(40_000, 8), tokens).experts.squeeze(1)
    counts = torch.bincount(first, minlength=4).double()
    chi2 = float(((counts - 10_000) ** 2 / 10_000).sum())
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001
    torch.manual_seed(123)
    assert torch.equal(router(torch.zeros(40_000, 8), tokens).experts.squeeze(1), first)


def test_random_sequence_granularity_keeps_a_sequence_on_one_expert():
    router = RandomRouter(8, "sequence")
    sequence = torch.arange(50).repeat_interleave(6)
    route = router(
        torch.zeros(300, 4), Tokens(ids=torch.zeros(300, dtype=torch.long), sequence=sequence, n_sequences=50)
    )
    per_sequence = route.experts.view(50, 6)
    assert (per_sequence == per_sequence[:, :1]).all()
    assert len(per_sequence[:, 0].unique()) > 1


def test_hash_is_deterministic_and_balanced_on_the_vocabulary():
    from harness.models.backbones import get_backbone

    vocab = len(get_backbone("tiny-bert").tokenizer())
    table = balanced_hash(vocab, 4)
    assert torch.equal(table, balanced_hash(vocab, 4))
    counts = torch.bincount(table, minlength=4)
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == vocab


@pytest.mark.parametrize("strategy", ["topk", "switch", "gshard", "fixed_random"])
def test_gradients_reach_learned_routers_and_never_the_frozen_one(strategy):
    routing, model = routed(strategy)
    model.train()
    routing.loss(model, batch()).backward()
    gates = [block.router.gate.weight for block in routing.blocks.values()]
    if strategy == "fixed_random":
        assert all(g.grad is None and not g.requires_grad for g in gates)
    else:
        assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in gates)


def test_switch_balancing_loss_is_one_when_balanced():
    first = torch.arange(8) % 4  # two tokens per expert
    uniform = torch.full((8, 4), 0.25)
    assert float(load_balancing_loss(uniform, first)) == pytest.approx(1.0)
    skewed_probs = torch.softmax(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), -1)
    assert float(load_balancing_loss(skewed_probs, first)) == pytest.approx(1.0)  # Σ Pᵢ = 1 when f is uniform
    collapsed = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(8, 1)
    assert float(load_balancing_loss(collapsed, torch.zeros(8, dtype=torch.long))) == pytest.approx(4 * 0.97)


def test_learned_router_routes_in_float32_under_bf16_autocast():
    """Switch's selective precision: under bf16 autocast the router's choices and balance loss are the float32
    router's, so training in bf16 does not move a token to another expert."""
    torch.manual_seed(0)
    router = LearnedRouter(384, 4, 1, balance=0.01).train()
    x = torch.randn(300, 384)
    tokens = Tokens(ids=torch.zeros(300, dtype=torch.long), sequence=torch.zeros(300, dtype=torch.long), n_sequences=1)
    reference = router(x, tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = router(x, tokens)
    assert torch.equal(mixed.experts, reference.experts)
    assert mixed.balance == reference.balance


def test_capacity_drops_tokens_beyond_each_experts_share():
    keep = capacity_keep(torch.zeros(10, dtype=torch.long), 4, 1.0)  # capacity ⌈10/4⌉ = 3
    assert keep.tolist() == [True] * 3 + [False] * 7


def _perturbed_bank(n: int = 3) -> FFNExperts:
    torch.manual_seed(5)
    up, down = torch.nn.Linear(6, 10), torch.nn.Linear(10, 6)
    bank = FFNExperts(up, down, torch.nn.GELU(), n)
    with torch.no_grad():
        for p in bank.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # experts that have drifted apart, as after training
    return bank


def test_merge_is_exactly_one_expert_with_averaged_weights():
    bank = _perturbed_bank()
    single = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.GELU(), torch.nn.Linear(10, 6))
    with torch.no_grad():
        single[0].weight.copy_(torch.stack(list(bank.w_up)).mean(0))
        single[0].bias.copy_(torch.stack(list(bank.b_up)).mean(0))
        single[2].weight.copy_(torch.stack(list(bank.w_down)).mean(0))
        single[2].bias.copy_(torch.stack(list(bank.b_down)).mean(0))
    context = RoutingContext()
    block = RoutedBlock(bank, RandomRouter(3, "token"), context, "merge").eval()
    x = torch.randn(2, 5, 6)
    assert torch.equal(block(x), single(x))


def test_dispatch_matches_a_per_token_loop():
    bank = _perturbed_bank()
    x = torch.randn(9, 6)
    experts = torch.tensor([[0, 2], [1, 0], [2, 1], [0, 1], [2, 2], [1, 0], [0, 2], [1, 1], [2, 0]])
    weights = torch.rand(9, 2)
    keep = torch.rand(9, 2) > 0.3
    out = dispatch(x, Route(experts=experts, weights=weights, keep=keep), bank)
    expected = torch.stack(
        [
            sum(
                (weights[i, j] * bank.expert(int(experts[i, j]), x[i : i + 1])[0] for j in range(2) if keep[i, j]),
                torch.zeros(6),
            )
            for i in range(9)
        ]
    )
    assert torch.allclose(out, expected, atol=1e-6)


def test_top1_dispatch_and_its_gradients_match_a_per_token_loop():
    """Groups of 0, 1, 31, 32, 33 and 70 tokens: dispatch pads each to a multiple of ROW_MULTIPLE rows for the
    GEMM kernels' sake; the padding must change neither an output nor a gradient."""
    bank = _perturbed_bank(6)
    sizes = [0, 1, ROW_MULTIPLE - 1, ROW_MULTIPLE, ROW_MULTIPLE + 1, 70]
    experts = torch.cat([torch.full((n,), e) for e, n in enumerate(sizes)])[torch.randperm(sum(sizes))]
    x = torch.randn(len(experts), 6, requires_grad=True)
    out = dispatch(x, Route(experts=experts.unsqueeze(1), weights=None), bank)
    expected = torch.cat([bank.expert(int(e), x[i : i + 1]) for i, e in enumerate(experts)])
    assert torch.allclose(out, expected, atol=1e-6)
    probe = torch.randn_like(out)
    grads = {"allow_unused": True, "materialize_grads": True}  # expert 0 has no token: zero gradients
    got = torch.autograd.grad((out * probe).sum(), [x, *bank.parameters()], **grads)
    want = torch.autograd.grad((expected * probe).sum(), [x, *bank.parameters()], **grads)
    assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got, want, strict=True))


class _Scripted(torch.nn.Module):
    """Returns the given outputs in turn, as two stochastic passes of a model would."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = iter(outputs)

    def forward(self, **batch):
        return next(self.outputs)


def test_thor_loss_is_its_formula_by_hand():
    from types import SimpleNamespace

    logits_1 = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    logits_2 = torch.tensor([[1.0, 1.0], [0.5, 0.0]])
    labels = torch.tensor([0, 1])
    ce_1 = torch.nn.functional.cross_entropy(logits_1, labels)
    ce_2 = torch.nn.functional.cross_entropy(logits_2, labels)
    p1, p2 = logits_1.softmax(-1), logits_2.softmax(-1)
    kl = lambda p, q: float((p * (p / q).log()).sum(-1).mean())  # noqa: E731
    expected = float(ce_1 + ce_2) + 0.7 * 0.5 * (kl(p1, p2) + kl(p2, p1))

    scripted = _Scripted([SimpleNamespace(loss=ce_1, logits=logits_1), SimpleNamespace(loss=ce_2, logits=logits_2)])
    got = two_pass_loss(scripted, {"labels": labels}, 0.7, RoutingContext())
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert float(symmetric_kl(logits_1, logits_1, labels)) == pytest.approx(0.0, abs=1e-7)


def test_token_kl_ignores_unlabelled_positions():
    a = torch.randn(1, 3, 4)
    b = a.clone()
    b[0, 2] += 5.0  # differs only where the label is ignored
    assert float(symmetric_kl(a, b, torch.tensor([[1, 2, -100]]))) == pytest.approx(0.0, abs=1e-7)


def test_telemetry_counts_real_tokens_and_flags_collapse():
    routing, model = routed("hash", experts=2)
    model.train()
    routing.start_epoch()
    inputs = batch()
    inputs["input_ids"][inputs["attention_mask"].bool()] = 7  # one token id: hash sends everything one way
    model(**inputs)
    stats = routing.telemetry()
    real = int(inputs["attention_mask"].sum())
    assert all(layer["tokens"] == real for layer in stats["layers"].values())
    assert stats["collapsed"] and stats["busiest_expert_share"] == 1.0 and stats["load_entropy"] == 0.0
    assert stats["max_entropy"] == pytest.approx(math.log(2), abs=1e-4)


def test_routing_inputs_do_not_outlive_the_forward_pass():
    routing, model = routed("hash")
    model(**batch())
    assert routing.context.token_ids is None and routing.context.mask is None
    block = next(iter(routing.blocks.values()))
    with pytest.raises(RuntimeError, match=r"outside RoutingContext\.bind"):
        block.train()(torch.zeros(1, 2, 16))


@pytest.mark.parametrize("strategy", list(routers))
def test_every_strategy_trains_end_to_end_and_records_its_routing(toy, tmp_path, strategy):
    path = toy(routing=f"[{{strategy: {strategy}}}]")
    summary = run_cells(expand(load_suite(path), path), tmp_path / "out", QUIET, log=lambda _: None)
    assert summary.failed == 0
    (record,) = ResultStore(tmp_path / "out").records()
    assert record.metrics.test["f1"] > 0.8, record.metrics.test
    stats = record.routing_stats
    if strategy in EXPERT_STRATEGIES:
        assert len(stats.layers) == 2 and all(layer["tokens"] > 0 for layer in stats.layers.values())
        assert 0 <= stats.load_entropy <= stats.max_entropy + 1e-6
        assert all("load_entropy" in epoch.routing for epoch in record.history)
    elif strategy == "layerdrop":
        assert len(stats.skip_rate) == 2
    else:
        assert stats == RoutingStats()


def test_leaderboard_rows_tell_routing_variants_apart():
    from harness.analysis.leaderboard import leaderboards
    from harness.records.record import Record
    from harness.suite.cell import Cell
    from harness.suite.specs import TrainConfig
    from harness.tasks.base import TaskSpec

    def record(routing: dict, seed: int) -> Record:
        task = TaskSpec(name="t", type="ner", format="conll")
        cell = Cell(
            suite="s", task=task, backbone="b", method={"name": "full"}, routing=routing, regime="full", seed=seed,
            train=TrainConfig(), data_dir="",
        )  # fmt: skip
        metrics = {"headline": "f1", "test": {"f1": 0.5}, "validation": {"f1": 0.5}}
        return cell.record("done", metrics, {}, cost={"trainable_params": 10, "train_seconds": 1.0})

    plain = params("random").model_dump(mode="json")
    variant = params("random", every=2).model_dump(mode="json")
    (table,) = leaderboards([record(plain, 1), record(plain, 2), record(variant, 1)]).values()
    assert sorted(table["routing"]) == ["random", "random every=2"]
    assert sorted(table["seeds"]) == [1, 2]


def test_fixed_random_restores_the_k_of_the_best_epoch_with_its_weights():
    """The best epoch's state dict carries the router's k: testing at a k it was not selected at is a bug."""
    routing, model = routed("fixed_random", experts=4, k_start=1, k_end=4)
    routers_ = [block.router for block in routing.blocks.values()]
    routing.on_step(0, 4)  # k grows: 1 + round(3 · 1/4) = 2
    best = {name: value.clone() for name, value in model.state_dict().items()}
    routing.on_step(3, 4)  # the last step: k = 4
    assert {router.k for router in routers_} == {4}
    model.load_state_dict(best)
    assert {router.k for router in routers_} == {2}
    inputs = batch()
    with torch.no_grad():
        model(**inputs)  # routes with k = 2 again
