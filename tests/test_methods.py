"""Parameter-efficient methods: exactly which weights train, and saved weights give the same predictions."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForTokenClassification

from harness.methods import build_method, methods
from harness.models.backbones import get_backbone
from harness.routing import build_routing, routers
from harness.run.execute import assemble
from harness.tasks import families

# tiny-bert: hidden 32, 2 layers, FFN 64. Counted by hand:
#   whole model (sequence classification, 2 labels): embeddings 30522·32 + 512·32 + 2·32 + LN 64 = 993,216;
#   per layer Q,K,V,O 4·(32·32+32) + LN 64 + FFN (32·64+64) + (64·32+32) + LN 64 = 8,544 (×2); pooler 1,056;
#   head 32·2+2 = 66  →  1,011,426.
#   head for NER (9 tags): 32·9+9 = 297.
#   LoRA r=8 on query and value: (8·32 + 32·8) = 512 per linear · 2 linears · 2 layers = 2,048.
#   LoRA r=8 on every linear (all-linear, the default): per layer Q,K,V,O 4·512 + FFN in (8·32 + 64·8) = 768 + FFN
#   out (8·64 + 32·8) = 768 → 3,584 · 2 layers = 7,168 (the encoder layers' linears: not the classifier's pooler).
#   adapter, reduction 16 → bottleneck 2: down 2·32+2, up 32·2+32 = 162 per site; Pfeiffer 1 site per layer = 324,
#   Houlsby 2 sites per layer = 648 plus every LayerNorm (embeddings + 2 per layer: 5·64 = 320).
#   prompt tuning, 20 virtual tokens of width 32 = 640.
HEAD_CLS, HEAD_NER = 66, 297
EXPECTED = {
    ("full", "classification"): 1_011_426,
    ("lora target_modules=query,value", "classification"): 2_048 + HEAD_CLS,
    ("lora", "classification"): 7_168 + HEAD_CLS,
    ("lora", "ner"): 7_168 + HEAD_NER,
    ("adapter", "classification"): 648 + 320 + HEAD_CLS,
    ("adapter style=pfeiffer", "ner"): 324 + HEAD_NER,
    ("prompt_tuning", "classification"): 640 + HEAD_CLS,
    # routed, 4 experts per site: LoRA 4·2,048; Pfeiffer adapters 4·324 (the routers are parameter-free)
    ("lora random", "classification"): 4 * 7_168 + HEAD_CLS,
    ("adapter style=pfeiffer random", "ner"): 4 * 324 + HEAD_NER,
}


def method_params(spec: str):
    name, *fields = spec.split()
    values: dict = dict(f.split("=") for f in fields if "=" in f)
    values = {k: v.split(",") if "," in v else v for k, v in values.items()}
    return methods.get(name).Params.model_validate({"name": name, **values})


def prepared(spec: str, task_type: str, seed: int = 0) -> torch.nn.Module:
    """The tiny backbone with a head for ``task_type``, prepared by ``spec`` ("lora", "adapter style=pfeiffer
    random" …: a method, its fields, and optionally a routing strategy with 4 experts)."""
    torch.manual_seed(seed)
    strategy = spec.split()[-1] if spec.split()[-1] in routers else "none"
    method = build_method(method_params(spec.removesuffix(f" {strategy}") if strategy != "none" else spec))
    labels = (
        ["0", "1"] if task_type == "classification" else ["O", "B-A", "I-A", "B-B", "I-B", "B-C", "I-C", "B-D", "I-D"]
    )
    family = families.get(task_type)
    dense = get_backbone("tiny-bert").model(family.auto_model(), labels)
    fields = {"strategy": strategy} | ({"experts": 4, "inference": "merge"} if strategy != "none" else {})
    routing = build_routing(routers.get(strategy).Params.model_validate(fields))
    return method, assemble(dense, method, routing, family)


@pytest.mark.parametrize(("spec", "task_type"), list(EXPECTED))
def test_trainable_parameter_counts_are_exact(spec, task_type):
    _, model = prepared(spec, task_type)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == EXPECTED[spec, task_type]


def inputs(task_type: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1000, 2000, (4, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


@pytest.mark.parametrize(
    ("spec", "task_type"),
    [("lora", "ner"), ("adapter", "classification"), ("prompt_tuning", "classification"), ("lora random", "ner")],
)
def test_saved_weights_reload_to_identical_predictions(spec, task_type, tmp_path):
    """Train-like changes to the method's weights survive save → fresh model → load, bit for bit."""
    method, model = prepared(spec, task_type)
    with torch.no_grad():  # stand-in for training: every trainable weight moves
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    model.eval()
    expected = model(**inputs(task_type)).logits
    method.save(model, tmp_path / "weights")

    _, fresh = prepared(spec, task_type)  # same pretrained (here: same-seed) backbone, untrained method weights
    fresh.eval()
    assert not torch.equal(fresh(**inputs(task_type)).logits, expected)
    method.load(fresh, tmp_path / "weights")
    assert torch.equal(fresh(**inputs(task_type)).logits, expected)


def test_lora_weights_are_saved_in_peft_format(tmp_path):
    from peft import PeftModel

    method, model = prepared("lora", "ner")
    method.save(model, tmp_path / "w")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "w").iterdir()}
    torch.manual_seed(0)
    base = get_backbone("tiny-bert").model(
        AutoModelForTokenClassification, ["O", *[f"{b}-{t}" for t in "ABCD" for b in "BI"]]
    )
    reloaded = PeftModel.from_pretrained(base, tmp_path / "w").eval()
    model.eval()
    assert torch.equal(reloaded(**inputs("ner")).logits, model(**inputs("ner")).logits)


def test_fixed_random_router_stays_frozen_under_every_method():
    for method in ("full", "lora", "adapter"):
        torch.manual_seed(0)
        chosen = build_method(methods.get(method).Params())
        routing = build_routing(routers.get("fixed_random").Params())
        dense = get_backbone("tiny-bert").model(AutoModelForTokenClassification, ["O", "B-A", "I-A"])
        model = assemble(dense, chosen, routing, families.get("ner"))
        gates = [n for n, p in model.named_parameters() if "router" in n]
        assert gates and not any(p.requires_grad for n, p in model.named_parameters() if "router" in n), method
