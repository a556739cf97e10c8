"""Shared test set-up: offline hub, a private tokenisation cache, the real data folder, small helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
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


@pytest.fixture(autouse=True)
def _tracking_uri_stays_in_its_test():
    """``mlflow.set_tracking_uri`` also sets MLFLOW_TRACKING_URI, which later ``bench`` children would inherit."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture
def write(tmp_path: Path):
    """``write("name.yaml", text)`` dedents ``text`` into ``tmp_path`` and returns the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


def bench(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


# torch's float sums depend on its thread count: a serial run with one thread per process is the reference that
# one-thread Dask workers must match bit for bit
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def smoke_serial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """``bench run suites/smoke.yaml`` in this process, one thread, weights kept: (results, report, result)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/datasets")
    root = tmp_path_factory.mktemp("smoke-serial")
    out, report = root / "out", root / "report"
    args = ("run", "suites/smoke.yaml", "--out", str(out), "--report", str(report), "--quiet", "--save-weights")
    return out, report, bench(*args, env=ONE_THREAD)


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
{extra}"""


@pytest.fixture
def toy(tmp_path: Path, write):
    """A suite over a learnable toy NER dataset; ``toy(seeds=..., epochs=..., lr=...)`` returns its path."""
    for split, n, seed in (("train", 300, 0), ("validation", 60, 1), ("test", 80, 2)):
        (tmp_path / f"{split}.conll").write_text(toy_ner_lines(n, seed))

    def make(
        seeds: str = "[1]",
        epochs: int = 4,
        lr: float = 3e-3,
        name: str = "suite.yaml",
        routing: str = "[none]",
        extra: str = "",
    ) -> Path:
        return write(name, TOY_SUITE.format(seeds=seeds, epochs=epochs, lr=lr, routing=routing, extra=extra))

    return make


SEARCHED = """
name: searched
tasks:
  - name: toy-ner
    type: ner
    format: conll
    files: {{train: train.conll, validation: validation.conll, test: {test}}}
backbones: [tiny-bert]
seeds: [1, 2]
data_dir: .
train: {{epochs: 3, batch_size: 16, lr: 3.0e-3, max_length: 32, warmup_ratio: 0.0}}
search:
  trials: {trials}
  heartbeat_seconds: 1
  pruner: median
  space:
    lr: {{type: log_float, low: 3.0e-4, high: 1.0e-2}}
    warmup_ratio: {{type: float, low: 0.0, high: 0.2}}
"""


@pytest.fixture
def searched(tmp_path: Path, write):
    """A toy NER suite with a search block; ``searched(trials=…, test=…)`` returns its path."""
    for split, n, seed in (("train", 300, 0), ("validation", 60, 1), ("test", 80, 2)):
        (tmp_path / f"{split}.conll").write_text(toy_ner_lines(n, seed))

    def make(trials: int = 4, test: str = "test.conll", name: str = "suite.yaml") -> Path:
        return write(name, SEARCHED.format(trials=trials, test=test))

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_when_up(url: str, server: subprocess.Popen, timeout: float = 90) -> str:
    """The body at ``url`` once the server behind it answers (fails if the server exits first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no answer from {url} (exit code {server.poll()})") from None
            time.sleep(0.5)


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend; stopped by its PID."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
    ]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        get_when_up(f"{url}/health", server)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's workers are its children: stop the whole group
        server.wait(timeout=30)
        log.close()
