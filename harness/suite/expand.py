"""From a suite file to cells: load and check it, resolve the profile and the data folder, and expand the grids
into the cross product of cells."""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from pathlib import Path

from pydantic import ValidationError

from harness.core.errors import BenchError
from harness.evaluation.probes import probe_name
from harness.methods import methods
from harness.records.measures import measure, measured
from harness.suite.cell import Cell
from harness.suite.compatibility import combination_problems, evaluation_problems, search_problems
from harness.suite.schema import SEED_TAGS, Suite
from harness.suite.specs import REGIME_TAGS, TrainConfig
from harness.suite.yaml_lines import Loc, describe_error, dotted, line_of, load_yaml
from harness.tasks import families
from harness.tasks.base import TaskSpec
from harness.tasks.data import check_task


def load_suite(path: Path) -> Suite:
    """Parse and validate ``path``, then check its combinations; every problem becomes one
    ``file:line: field: message`` line."""
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise BenchError(f"{path}:1: expected a mapping of suite fields, got {type(data).__name__}")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        tags = REGIME_TAGS + SEED_TAGS
        raise BenchError("\n".join(describe_error(err, path, data, lines, tags) for err in e.errors())) from None
    problems = combination_problems(suite, path, lines) + search_problems(suite, path, lines)
    problems += _profile_problems(suite, path, lines) + evaluation_problems(suite, path, lines)
    if not problems:
        problems += _hypothesis_problems(suite, path, lines)
    if problems:
        raise BenchError("\n".join(problems))
    return suite


def _profile_problems(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """A grid limited to a profile the suite does not define would silently never run."""
    known = ", ".join(suite.profiles) or "none defined"
    return [
        f"{path}:{line_of(lines, loc)}: {dotted(loc)}: unknown profile {name!r} (profiles: {known})"
        for i, grid in enumerate(suite.grids or [])
        for j, name in enumerate(grid.profiles or [])
        if name not in suite.profiles
        for loc in [("grids", i, "profiles", j)]
    ]


def _hypothesis_problems(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """Each side of a hypothesis must name one row of some task under some profile, and never two of one task."""
    rows = defaultdict(dict)  # (profile, task) → row key → the row's column labels
    for profile in [None, *suite.profiles]:
        for cell in expand(suite, path, profile):
            row = cell.row()
            shown = row.model_dump(include={"backbone", "method", "routing", "inference", "regime"})
            rows[profile, row.task][row.key] = shown | {"tuning": "-" if cell.search is None else "search"}
    problems = _metric_problems(suite, path, lines)
    for i, hypothesis in enumerate(suite.report.hypotheses):
        for side in ("a", "b"):
            ref = getattr(hypothesis, side)
            picked = {where: [r for r in found.values() if ref.picks(r)] for where, found in rows.items()}
            where = f"{path}:{line_of(lines, ('report', 'hypotheses', i, side))}: report.hypotheses[{i}].{side}"
            if not any(picked.values()):
                problems.append(f"{where}: {ref} matches no row of the suite")
            many = {task: matched for (_, task), matched in picked.items() if len(matched) > 1}
            for task, matched in many.items():
                shown = "; ".join(f"{r['method']}/{r['routing']}/{r['inference']}/{r['regime']}" for r in matched)
                problems.append(f"{where}: {ref} matches {len(matched)} rows of {task} ({shown}): name more columns")
    return problems


def _metric_problems(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """A hypothesis about a measure beyond the score needs a cell that measures it (a probe, the attack, the
    train–validation gap are asked for in an evaluate block)."""
    written: set[str] = set()
    for profile in [None, *suite.profiles]:
        for cell in expand(suite, path, profile):
            if cell.trains:
                probes = [probe_name(p) for p in cell.evaluate.probes]
                attack = cell.evaluate.attack is not None and families.get(cell.task.type).attackable
                written |= measured(probes, cell.evaluate.overfit, attack)
    return [
        f"{path}:{line_of(lines, loc)}: {dotted(loc)}: no cell of the suite measures {h.metric!r} (ask for it in "
        f"an evaluate block: docs/statistics-and-findings.md#beyond-the-clean-score)"
        for i, h in enumerate(suite.report.hypotheses)
        if measure(h.metric) is not None and h.metric not in written
        for loc in [("report", "hypotheses", i, "metric")]
    ]


def _profile_name(suite: Suite, profile: str | None) -> str | None:
    if profile is None:
        return "default" if "default" in suite.profiles else None
    return profile


def resolve_profile(suite: Suite, profile: str | None) -> TrainConfig:
    """The base ``train`` block with the named profile's fields laid over it (``default`` if defined)."""
    profile = _profile_name(suite, profile)
    if profile is None:
        return suite.train
    if profile not in suite.profiles:
        known = ", ".join(suite.profiles) or "none defined"
        raise BenchError(f"suite {suite.name!r} has no profile {profile!r} (profiles: {known})")
    return suite.train.model_copy(update=suite.profiles[profile].model_dump(exclude_unset=True))


def data_dir_for(suite: Suite, suite_path: Path, task: TaskSpec) -> Path:
    """Where a task's relative files are read: the suite's ``data_dir`` when it names one (relative to the suite
    file); else beside the suite file when every relative file of the task is there, as paths in a config file
    usually resolve; else ``$BENCH_DATA_DIR``; else beside the suite (where a missing file is then reported)."""
    beside = suite_path.parent.resolve()
    if suite.data_dir is not None:
        return (beside / suite.data_dir).resolve()
    files = [f for f in (task.files.model_dump().values() if task.files else []) if f is not None]
    if files and all((beside / f).is_file() for f in files):
        return beside
    if os.environ.get("BENCH_DATA_DIR"):
        return Path(os.environ["BENCH_DATA_DIR"]).resolve()
    return beside


def expand(suite: Suite, suite_path: Path, profile: str | None = None) -> list[Cell]:
    """The union over grids of task × backbone × method × routing × regime × seed, in a stable order.

    A method without randomness (``majority``, ``zero_shot``) gets only the first seed; a few-shot regime
    adds one cell per split seed; a grid limited to other profiles adds nothing.
    """
    base, name = resolve_profile(suite, profile), _profile_name(suite, profile)
    cells: dict[str, Cell] = {}
    for _, axes in suite.grid_axes():
        if axes["profiles"] is not None and name not in axes["profiles"]:
            continue
        for task, backbone, method, routing, regime in itertools.product(
            axes["tasks"], axes["backbones"], axes["methods"], axes["routing"], axes["regimes"]
        ):
            seeds = axes["seeds"] if methods.get(method.name).seeded else axes["seeds"][:1]
            train = regime.training(base)
            search = axes["search"] if methods.get(method.name).trains else None
            for seed in seeds:
                for cell_regime in regime.cells(seed):
                    cell = Cell(
                        suite=suite.name,
                        task=task,
                        backbone=backbone,
                        method=method,
                        routing=routing,
                        regime=cell_regime,
                        seed=seed,
                        train=train,
                        data_dir=str(data_dir_for(suite, suite_path, task)),
                        search=search,
                        evaluate=axes["evaluate"],
                    )
                    cells.setdefault(cell.config_hash, cell)
    return list(cells.values())


def check_data(cells: list[Cell]) -> list[str]:
    """Each task's data opened as the cells will use it (``check_task``): one line per task."""
    tasks: dict[tuple[str, str], TaskSpec] = {}
    seeds: dict[tuple[str, str], set[int]] = defaultdict(set)  # data seeds of cells with the whole training split
    samples: dict[tuple[str, str], set[tuple[int, int]]] = defaultdict(set)  # (shots, split seed) of few-shot cells
    for cell in cells:
        key = (cell.task.name, cell.data_dir)
        tasks[key] = cell.task
        data_seed = cell.regime.data_seed(cell.seed)
        if cell.regime.shots is None:
            seeds[key].add(data_seed)
        else:
            samples[key].add((cell.regime.shots, data_seed))
    return [check_task(spec, Path(key[1]), seeds[key], samples[key]) for key, spec in tasks.items()]
