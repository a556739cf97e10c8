"""Which suite combinations can run: a method with a task type, a routing strategy and a regime, and search keys
that name real fields with values those fields accept. Checked when a suite loads, before any work."""

from __future__ import annotations

import itertools
from pathlib import Path

from pydantic import ValidationError

from harness.methods import build_method, methods
from harness.routing import describe
from harness.search_space import METHOD_PREFIX, extremes
from harness.specs import TrainConfig
from harness.suite import Suite
from harness.tasks import families
from harness.yaml_lines import Loc, dotted, line_of


def combination_problems(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """Combinations that make no sense (routing a prompt baseline, prompt tuning on NER …): one line per
    method entry and reason, at the entry, naming the first combination that hit it."""
    problems: dict[tuple, str] = {}
    for grid, axes in suite.grid_axes():
        for task, (m, method), routing, regime in itertools.product(
            axes["tasks"], enumerate(axes["methods"]), axes["routing"], axes["regimes"]
        ):
            reason = build_method(method).conflict(task.type, routing, regime)
            loc = (*suite.axis_location(grid, "methods"), m)
            if reason is None or (loc, reason) in problems:
                continue
            problems[loc, reason] = (
                f"{path}:{line_of(lines, loc)}: {dotted(loc)}: {reason} "
                f"(task {task.name}, routing {describe(routing.model_dump())}, regime {regime.label})"
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
