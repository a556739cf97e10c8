"""The real backbone, offline: all-MiniLM-L6-v2 from its wheel, briefly fine-tuned on real data slices."""

from __future__ import annotations

import pytest

from harness.models.backbones import get_backbone, packaged_minilm
from harness.records.store import ResultStore
from harness.run.runner import RunOptions, run_cells
from harness.suite.expand import expand, load_suite

from .conftest import SHARED_DATA

QUIET = RunOptions(progress=False)

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/datasets")


def test_minilm_comes_from_the_installed_wheel_not_the_hub():
    path = packaged_minilm()
    assert path is not None and "site-packages" in str(path)
    backbone = get_backbone("minilm-l6")
    assert backbone.source == str(path) and backbone.config is None


@pytest.mark.parametrize(
    ("task", "train", "floor"),
    [
        ("conll2003", "{epochs: 3, lr: 3.0e-4, train_subset: 1000, validation_subset: 300, max_length: 64}", 0.55),
        ("sst2", "{epochs: 2, lr: 1.0e-4, train_subset: 2000, validation_subset: 300, max_length: 64}", 0.75),
    ],
)
def test_short_fine_tune_beats_chance_by_far(write, tmp_path, task, train, floor):
    """A thousand or two real examples already give the pretrained encoder a score no random model reaches."""
    path = write("suite.yaml", f"name: real\ntasks: [{task}]\nbackbones: [minilm-l6]\nseeds: [1]\ntrain: {train}\n")
    run_cells(expand(load_suite(path), path), tmp_path / "out", QUIET, log=lambda _: None)
    (record,) = ResultStore(tmp_path / "out").records()
    assert record.status == "done", record.error
    headline = record.metrics.headline
    assert record.metrics.test[headline] > floor
    assert record.cost.total_params == record.cost.trainable_params > 22_000_000
