"""The house rules a newcomer relies on, checked on the source: which folder of harness/ may import which (the
reading half stands alone), no import cycle (function-level imports included), no module over 400 lines, no
function over 60."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "harness"


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each harness module → the harness modules it imports anywhere in its body (``from harness.x import y``
    counts ``harness.x.y`` when y is a module)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("harness")}
        graph[name] = (found & set(modules)) - {name}  # a package importing its own submodules is no cycle
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a depth-first search for a back edge), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_in_the_package():
    assert _cycle(_imports()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


# The layout's rules, in its own words: a folder on the left imports nothing from the folders on the right.
RUNNING = ("suite", "run", "models", "tasks", "methods", "routing", "evaluation")
FORBIDDEN = {
    "core": ("suite", "run", "models", "tasks", "methods", "routing", "evaluation", "records", "analysis", "cli"),
    "records": (*RUNNING, "analysis", "cli"),  # the contract reads without either half
    "analysis": (*RUNNING, "cli"),  # the reading half imports nothing of the running folders
    "suite": ("run", "cli"),
    "routing": ("methods", "cli"),
    "tasks": ("routing", "methods", "evaluation", "cli"),
    # probes, calibration and the attack are algorithms over words and probabilities: they know no model or suite
    "evaluation": ("suite", "run", "models", "tasks", "methods", "routing", "records", "analysis", "cli"),
}


def _folder(module: str) -> str:
    """``harness.analysis.report`` → ``analysis``; a top-level module (``harness.cli``) is its own name."""
    return module.split(".")[1] if module.count(".") else module


def _violations(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if _folder(target) in FORBIDDEN.get(_folder(module), ())
    ]


def test_each_folder_imports_only_what_the_layout_allows():
    assert _violations(_imports()) == []


def test_a_deliberate_violation_is_caught():
    """The reading half importing the training loop, a task family reaching for a routing strategy, and the suite
    folder importing the runner are each named; the allowed direction (run/ importing analysis/) is not."""
    graph = _imports()
    graph["harness.analysis.report"] = graph["harness.analysis.report"] | {"harness.run.train"}
    graph["harness.tasks.ner"] = graph["harness.tasks.ner"] | {"harness.routing.moe"}
    graph["harness.suite.cell"] = graph["harness.suite.cell"] | {"harness.run.runner"}
    assert _violations(graph) == [
        "harness.analysis.report imports harness.run.train",
        "harness.suite.cell imports harness.run.runner",
        "harness.tasks.ner imports harness.routing.moe",
    ]


def test_the_package_is_laid_out_in_the_named_folders():
    """A module outside the named folders (other than the CLI) would be a new room nobody's rules cover."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(FORBIDDEN) | {"run", "models", "methods"}
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py", "cli.py"]


def test_modules_and_functions_stay_small():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 400:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{path.name}: {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []
