"""Which suite combinations can run: a method with a task type, a routing strategy and a regime (decided here and
nowhere else), and search keys that name real fields with values those fields accept. Checked when a suite
loads, before any work."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.methods import Method, build_method, methods
from harness.routing import describe
from harness.suite.schema import Suite
from harness.suite.search_space import METHOD_PREFIX, extremes
from harness.suite.specs import TrainConfig
from harness.suite.yaml_lines import Loc, dotted, line_of
from harness.tasks import families


def conflict(method: Method, task_type: str, routing: Any, regime: Any) -> str | None:
    """Why ``method`` cannot run with this task type, routing strategy and regime; None when it can. The one place
    that decides: the method's own parameters first, then its task types, then whether its paths can be routed."""
    name = method.params.name
    if (own := method.conflict(task_type, regime)) is not None:
        return own
    if getattr(regime, "train_size", None) is not None and not method.trains:
        return f"method {name!r} does not train; a training size would not change it"
    if method.task_types is not None and task_type not in method.task_types:
        return f"method {name!r} supports {' and '.join(method.task_types)} tasks, not {task_type}"
    if routing.strategy == "none":
        return None
    paths = method.paths()
    if paths is None:
        return f"method {name!r} has no parallel paths to route; pair it with routing 'none' in its own grid"
    wanted = getattr(routing, "placement", "auto")
    if wanted not in ("auto", "layer", paths.placement):
        return (
            f"routing placement {wanted!r} does not fit method {name!r}, whose paths are {paths.placement!r}; "
            "use placement: auto"
        )
    return None


def combination_problems(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """Combinations that make no sense (routing a prompt baseline, prompt tuning on NER …): one line per
    method entry and reason, at the entry, naming the first combination that hit it."""
    problems: dict[tuple, str] = {}
    for grid, axes in suite.grid_axes():
        for task, (m, method), routing, regime in itertools.product(
            axes["tasks"], enumerate(axes["methods"]), axes["routing"], axes["regimes"]
        ):
            reason = conflict(build_method(method), task.type, routing, regime)
            loc = (*suite.axis_location(grid, "methods"), m)
            if reason is None or (loc, reason) in problems:
                continue
            problems[loc, reason] = (
                f"{path}:{line_of(lines, loc)}: {dotted(loc)}: {reason} "
                f"(task {task.name}, routing {describe(routing.model_dump())}, regime {regime.label})"
            )
    return list(problems.values())


def evaluation_problems(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """Probes a grid's tasks cannot run: one limited to entity or context words needs a family with entities, the
    attack a family with one label per text."""
    problems: dict[tuple, str] = {}
    for grid, axes in suite.grid_axes():
        at = ("evaluate",) if not grid or suite.grids[grid[1]].evaluate is None else (*grid, "evaluate")
        for task in axes["tasks"] if axes["evaluate"].attack is not None else []:
            if not families.get(task.type).attackable:
                loc = (*at, "attack")
                problems.setdefault(
                    loc,
                    f"{path}:{line_of(lines, loc)}: {dotted(loc)}: the attack changes the label of a whole text; task "
                    f"{task.name} ({task.type}) has none (give that task a grid without it)",
                )
        for i, probe in enumerate(axes["evaluate"].probes):
            words = getattr(probe, "words", "all")
            for task in axes["tasks"]:
                if words != "all" and not families.get(task.type).has_entities:
                    loc = (*at, "probes", i, "words")
                    problems.setdefault(
                        loc,
                        f"{path}:{line_of(lines, loc)}: {dotted(loc)}: task {task.name} ({task.type}) has no entity "
                        f"words to tell from context; use words: all",
                    )
    return list(problems.values())


def search_problems(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """Search keys that name no field of the training settings or of a searched method, values at the edges
    of a range that the field would reject, and metrics the task does not report."""
    problems: dict[tuple, str] = {}

    def problem(loc: tuple, message: str) -> None:
        problems.setdefault(loc, f"{path}:{line_of(lines, loc)}: {dotted(loc)}: {message}")

    for grid, axes in suite.grid_axes():
        search = axes["search"]
        if search is None:
            continue
        at = (*grid, "search") if grid and suite.grids[grid[1]].search is not None else ("search",)
        for task in axes["tasks"]:
            known = families.get(task.type).metrics
            if search.metric is not None and search.metric not in known:
                problem((*at, "metric"), f"task {task.name} reports {', '.join(known)}, not {search.metric!r}")
        trained = [m for m in axes["methods"] if methods.get(m.name).trains]
        for key, param in search.space.items():
            loc = (*at, "space", key)
            for method in [None] if not key.startswith(METHOD_PREFIX) else trained:
                model = TrainConfig if method is None else type(method)
                name = key.removeprefix(METHOD_PREFIX)
                if name not in model.model_fields or name == "name":
                    allowed = ", ".join(f for f in model.model_fields if f != "name") or "none"
                    owner = "the training settings have" if method is None else f"method {method.name!r} has"
                    problem(loc, f"{owner} no field {name!r} (fields: {allowed})")
                    break
                base = {} if method is None else method.model_dump()
                for value in extremes(param):
                    try:
                        model.model_validate(base | {name: value})
                    except ValidationError as e:
                        problem(loc, f"{value!r} is not a valid {name}: {e.errors()[0]['msg']}")
    return list(problems.values())
