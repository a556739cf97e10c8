"""Task families (``ner``, ``classification``) and the built-in datasets, each in one registry."""

from harness.core.registry import Registry

# ruff: noqa: I001 (registration order)
from harness.tasks.base import HubSource, TaskFamily, TaskFiles, TaskSpec, families

# each family module registers itself on import; the order here is the order `bench list` shows
from harness.tasks import ner, classification

builtin_tasks: Registry[TaskSpec] = Registry("task")
builtin_tasks.register("conll2003")(
    TaskSpec(
        name="conll2003",
        type="ner",
        format="conll",
        files=TaskFiles(
            train="conll2003/train.conll",
            validation="conll2003/validation.conll",
            test="conll2003/test.conll",
        ),
        hub=HubSource(id="eriktks/conll2003"),
    )
)
# GLUE's SST-2 test split has no labels: the official dev set is reported as "test" and the
# validation split used for model selection is carved from train by seed (DESIGN.md, metrics).
builtin_tasks.register("sst2")(
    TaskSpec(
        name="sst2",
        type="classification",
        format="tsv",
        files=TaskFiles(train="sst2/train.tsv", test="sst2/validation.tsv"),
        hub=HubSource(id="nyu-mll/glue", config="sst2", splits={"train": "train", "test": "validation"}),
        validation_from_train=1000,
    )
)

__all__ = ["HubSource", "TaskFamily", "TaskFiles", "TaskSpec", "builtin_tasks", "classification", "families", "ner"]
