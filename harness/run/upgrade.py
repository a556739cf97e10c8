"""`bench upgrade DIR`: rewrite a results folder's schema-1 records (written before records carried their row)
as schema-2 records. The row comes from the cell rebuilt from the record's own config, and the rebuilt cell must
hash to the record's config hash, so an upgrade never attaches a record to a row it did not run as."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.core.atomic import write_json_atomic
from harness.core.errors import BenchError
from harness.records.record import SCHEMA_VERSION, Record
from harness.records.store import ResultStore
from harness.suite.cell import Cell


def upgraded(data: dict[str, Any]) -> Record:
    """A schema-1 record's content as a schema-2 record (raises ValueError when it cannot be rebuilt)."""
    config = data["config"]
    cell = Cell.model_validate(
        {
            "suite": data["suite"],
            "task": config["task"],
            "backbone": config["backbone"],
            "method": config["method"],
            "routing": config["routing"],
            "regime": config["regime"],
            "seed": config["seed"],
            "train": config.get("train", {}),
            "data_dir": "",
            "search": config.get("search"),
        }
    )
    if cell.config_hash != data["config_hash"]:
        raise ValueError(f"its config hashes to {cell.config_hash}, not to its config_hash {data['config_hash']}")
    return Record.model_validate(
        data | {"schema_version": SCHEMA_VERSION, "row": cell.row().model_dump(), "search": data.get("search") or None}
    )


def upgrade_folder(root: Path) -> tuple[int, int]:
    """Upgrade every schema-1 record under ``root`` in place (atomically, one file at a time): (upgraded, already
    current). Any record that cannot be upgraded stops the upgrade with its file named; none is half-written."""
    store = ResultStore(root)
    if not store.cells.is_dir():
        raise BenchError(f"{root}: no records (expected {store.cells}/<config_hash>.json)")
    upgraded_count = current = 0
    with store.lock():
        for path in sorted(store.cells.glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise BenchError(f"{path}: cannot read it as JSON ({e})") from None
            if data.get("schema_version") == SCHEMA_VERSION:
                current += 1
                continue
            try:
                record = upgraded(data)
            except (KeyError, ValueError, ValidationError) as e:
                first = str(e).splitlines()[0]
                raise BenchError(f"{path}: cannot upgrade this schema-1 record ({first})") from None
            write_json_atomic(path, record.dumped())
            upgraded_count += 1
    return upgraded_count, current
