"""Devices and precision: one place picks the device, an absent one is a one-line error, bf16 and fp16 cells
train for real on the CPU, and precision is part of what a cell is (its hash) while the device is not."""

from __future__ import annotations

import os

import pytest
import torch

from harness.methods.majority import MajorityParams
from harness.records.store import ResultStore
from harness.routing import routers
from harness.run.device import Compute, resolve_device
from harness.run.runner import RunOptions, run_cells
from harness.suite.expand import expand, load_suite

from .conftest import bench
from .test_routing import EXPERT_STRATEGIES, batch, routed, tiny_model


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("cuda", "--device cuda: CUDA is not available on this machine (use --device auto or cpu)"),
        ("cuda:1", "--device cuda:1: CUDA is not available on this machine (use --device auto or cpu)"),
        ("tpu", "--device 'tpu': expected auto, cpu, cuda, cuda:N or mps"),
    ],
)
def test_a_device_that_is_not_here_is_one_line_and_exit_2(toy, tmp_path, flag, message):
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # hides any GPU of the machine running the tests, in the child too
    try:
        result = bench(
            "run", str(toy()), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "r"), "--device", flag
        )
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "out" / "cells").exists()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_reduced_precision_cell_trains_on_cpu_and_is_its_own_cell(toy, tmp_path, precision):
    path = toy(epochs=4)
    fp32 = expand(load_suite(path), path)[0]
    cell = fp32.model_copy(update={"train": fp32.train.model_copy(update={"precision": precision})})
    assert "precision" not in fp32.hashed_fields()["train"]  # records made before the field keep their hashes
    assert cell.hashed_fields()["train"]["precision"] == precision and cell.config_hash != fp32.config_hash

    summary = run_cells([cell], tmp_path / "out", RunOptions(progress=False, device="cpu"), log=lambda _: None)
    assert summary.failed == 0
    (record,) = ResultStore(tmp_path / "out").records()
    assert record.config["train"]["precision"] == precision
    assert record.metrics.test["f1"] > 0.9  # the toy task is learnt in reduced precision too
    assert record.env["device"].startswith("cpu (")


def test_a_baseline_cell_is_keyed_by_precision_and_by_no_other_training_setting(toy):
    """Prompt baselines run in the suite's precision, so a bf16 zero-shot row is not the fp32 one; the learning
    rate does not touch a baseline, so it must not split its cell."""
    path = toy()
    cell = expand(load_suite(path), path)[0].model_copy(update={"method": MajorityParams()})
    assert not cell.trains

    def train(**update):
        return cell.model_copy(update={"train": cell.train.model_copy(update=update)}).config_hash

    assert train(lr=1.0) == cell.config_hash
    assert train(precision="bf16") != cell.config_hash


@pytest.mark.parametrize(
    ("strategy", "method"),
    [(s, "full") for s in routers] + [(s, m) for s in ("random", "switch") for m in ("adapter", "lora")],
)
def test_every_strategy_trains_and_predicts_under_bf16_autocast(strategy, method):
    """Routed dispatch mixes dtypes under autocast (bf16 expert outputs, fp32 combine weights and buffers)."""
    compute = Compute(torch.device("cpu"), "bf16")
    routing, model = routed(strategy, method) if strategy != "none" else (routed("none")[0], tiny_model())
    inputs = batch()
    model.train()
    with compute.autocast():
        loss = routing.loss(model, inputs)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    with compute.inference():
        got = model(**inputs).logits
    assert got.dtype == torch.bfloat16  # autocast was on
    real = inputs["attention_mask"].bool()
    assert torch.allclose(got.float()[real], expected[real], atol=0.05), (got.float() - expected).abs().max()
    if strategy in EXPERT_STRATEGIES:
        assert routing.telemetry()["layers"]
