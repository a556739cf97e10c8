"""Files written whole or not at all: a temporary file in the target's folder, fsync, rename. A process killed
mid-write leaves only a temporary file, named after its writer's pid so a later run can tell a dead writer's
leftovers from a live one's work in progress."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from harness.core.errors import BenchError

_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-f]+\.tmp(-journal)?$")


def temporary_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (hidden, with this process's pid)."""
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def write_bytes_atomic(path: Path, content: bytes) -> None:
    """Readers of ``path`` see its old content or ``content``, never a part; a file system that refuses the write
    is one line naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        try:
            with open(tmp, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise BenchError(f"{path}: cannot write it ({e.strerror or e}); check the folder exists and has room") from None


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, payload: Any) -> None:
    write_bytes_atomic(path, json.dumps(payload, indent=1, default=float).encode())


def remove_temporaries(folder: Path, *, recursive: bool = False, only_dead: bool = True) -> int:
    """Remove the temporary files left in ``folder`` by killed writers; returns how many. ``only_dead=False``
    removes every one (the caller holds the folder, so no writer is alive)."""
    found = folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")
    removed = 0
    for path in found:
        match = _TEMPORARY.match(path.name)
        if match and (not only_dead or not pid_alive(int(match["pid"]))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
