"""Shared test set-up: offline hub, a private tokenisation cache, the real data folder, small helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "datasets"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("BENCH_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["BENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("bench-cache"))


@pytest.fixture
def write(tmp_path: Path):
    """``write("name.yaml", text)`` dedents ``text`` into ``tmp_path`` and returns the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


def bench(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def toy_ner_lines(n_sentences: int, seed: int = 0) -> str:
    """A learnable CoNLL file: entity words come from small fixed lists, so a tiny model can fit it."""
    import random

    rng = random.Random(seed)
    people, places = ["alice", "bob", "carol", "dave"], ["paris", "london", "berlin", "rome"]
    fillers = ["the", "went", "to", "saw", "with", "and", "later", "today", "a", "friend"]
    out = []
    for _ in range(n_sentences):
        words: list[tuple[str, str]] = []
        for _ in range(rng.randint(3, 9)):
            r = rng.random()
            if r < 0.15:
                words.append((rng.choice(people), "B-PER"))
            elif r < 0.25:
                words += [(rng.choice(places), "B-LOC"), ("city", "I-LOC")]
            else:
                words.append((rng.choice(fillers), "O"))
        out.append("\n".join(f"{w} {t}" for w, t in words))
    return "\n\n".join(out) + "\n"


TOY_SUITE = """
name: toy
tasks:
  - name: toy-ner
    type: ner
    format: conll
    files: {{train: train.conll, validation: validation.conll, test: test.conll}}
backbones: [tiny-bert]
routing: {routing}
seeds: {seeds}
data_dir: .
train: {{epochs: {epochs}, batch_size: 16, lr: {lr}, max_length: 32, warmup_ratio: 0.0}}
"""


@pytest.fixture
def toy(tmp_path: Path, write):
    """A suite over a learnable toy NER dataset; ``toy(seeds=..., epochs=..., lr=...)`` returns its path."""
    for split, n, seed in (("train", 300, 0), ("validation", 60, 1), ("test", 80, 2)):
        (tmp_path / f"{split}.conll").write_text(toy_ner_lines(n, seed))

    def make(
        seeds: str = "[1]", epochs: int = 4, lr: float = 3e-3, name: str = "suite.yaml", routing: str = "[none]"
    ) -> Path:
        return write(name, TOY_SUITE.format(seeds=seeds, epochs=epochs, lr=lr, routing=routing))

    return make
