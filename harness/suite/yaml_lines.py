"""YAML loading that rejects duplicate keys and remembers the line of every key and item, and validation errors
reported at those lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import BenchError

Loc = tuple[str | int, ...]


def load_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse ``path``; return the data and a map from each key path to its 1-based line."""
    try:
        text = path.read_text()
    except OSError as e:
        raise BenchError(f"{path}: cannot read: {e.strerror}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise BenchError(f"{path}:1: the file is empty; expected a suite mapping")
        lines: dict[Loc, int] = {}
        data = _build(loader, node, (), lines, path)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise BenchError(f"{path}:{line}: invalid YAML: {e.problem or e.context}") from None
    finally:
        loader.dispose()
    return data, lines


def _build(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolve `<<: *anchor` merges like yaml.safe_load does
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise BenchError(
                    f"{path}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                    f"(first given on line {lines[(*loc, key)]})"
                )
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, (*loc, key), lines, path)
            lines[(*loc, key)] = key_node.start_mark.line + 1  # the key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*loc, i), lines, path) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def line_of(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of the deepest prefix of ``loc`` that exists in the file (union tags are skipped)."""
    best = lines.get((), 1)
    found: Loc = ()
    for part in loc:
        if (*found, part) in lines:
            found = (*found, part)
            best = lines[found]
    return best


def dotted(loc: Loc) -> str:
    """``("grids", 0, "methods", 1)`` as ``grids[0].methods[1]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def describe_error(err: Any, path: Path, data: Any, lines: dict[Loc, int], tags: tuple[str, ...] = ()) -> str:
    """A pydantic error as ``file:line: field: message``, at the line of the field it is about (``tags``: the
    tags of discriminated unions, which pydantic adds to locations but the file does not have)."""
    loc = tuple(err["loc"])
    if err["type"] == "unknown_field":
        loc = (*loc, err["ctx"]["field"])
    shown, node = [], data
    for part in loc:
        if part in tags or (isinstance(node, dict) and part not in node and part in node.values()):
            continue  # a discriminated-union tag that pydantic adds to the location
        shown.append(part)
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    field = dotted(tuple(shown)) or "(suite)"
    message = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if (
        err["type"] not in ("missing", "unknown_field")
        and isinstance(given, str | int | float | bool)
        and repr(given) not in message
    ):
        message += f" (got {given!r})"
    return f"{path}:{line_of(lines, loc)}: {field}: {message}"


def _has(node: Any, part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and 0 <= part < len(node)
