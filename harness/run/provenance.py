"""Where a number came from: harness version, git commit, package versions, data fingerprint."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import harness


def environment(data_fingerprint: str | None = None) -> dict[str, Any]:
    """Where a number came from: harness version, git commit and dirty flag, package versions, data."""
    repo = Path(harness.__file__).resolve().parent.parent
    env: dict[str, Any] = {"harness": harness.__version__, "python": platform.python_version()}
    env.update(_git(repo))
    for package in ("torch", "transformers", "datasets", "peft", "seqeval"):
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[package] = None
    env["data_fingerprint"] = data_fingerprint
    return env


def _git(repo: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"git": None, "git_dirty": None}
    return {"git": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
