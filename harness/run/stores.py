"""The SQLite stores a run keeps beside its records (MLflow's tracking store, Optuna's studies): made whole or
not at all.

A store is created and migrated under a temporary name in its folder, then linked into place (a link never
replaces a store another process made meanwhile). A kill during creation — MLflow's schema migrations take
seconds — leaves a temporary file the next run removes, never a half-migrated store. A half-migrated tracking
store left by an earlier version holds no runs (migrations come before the first run), so it is rebuilt; a
store that holds runs is never touched.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from harness.core.atomic import remove_temporaries, temporary_path
from harness.core.errors import BenchError
from harness.core.faults import stop_point


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for any other store, and for in-memory SQLite)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return Path(url.removeprefix("sqlite:///"))


def redact(url: str) -> str:
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://")[0] + "://…"


def make_whole(url: str, create: Callable[[str], None]) -> None:
    """Create the SQLite store of ``url`` (``create`` makes one at the URL it is given) unless it exists."""
    path = sqlite_file(url)
    if path is None or path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_temporaries(path.parent)
        tmp = temporary_path(path)
    except OSError as e:
        raise BenchError(f"{path}: cannot create it ({e.strerror or e}); check the folder is writable") from None
    try:
        create(f"sqlite:///{tmp}")
        stop_point(f"create-{path.stem}")
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile: theirs is as good
            os.link(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)


def open_tracking_store(url: str, artifact_root: Path) -> None:
    """Make sure the MLflow store at ``url`` opens: create it whole if it is missing, rebuild it if an earlier
    version left it half-migrated. Stores that are not local SQLite files are the server's business."""
    path = sqlite_file(url)
    if path is None:
        return
    if path.exists() and not _opens(url, artifact_root):
        if _holds_runs(path):
            raise BenchError(
                f"tracking store {path}: MLflow cannot open it and it holds runs; upgrade it with "
                f"`mlflow db upgrade {url}`, or move it away (the records are the source of truth)"
            )
        path.unlink()
    make_whole(url, lambda at: _close(_mlflow_store(at, artifact_root)))


def create_study_store(url: str) -> None:
    """Create the Optuna storage at ``url`` whole if it is a missing SQLite file."""
    import optuna

    def create(at: str) -> None:
        optuna.storages.RDBStorage(at).engine.dispose()

    make_whole(url, create)


def _mlflow_store(url: str, artifact_root: Path):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(url, (artifact_root / "mlartifacts").resolve().as_uri())


def _close(store) -> None:
    store.engine.dispose()
    type(store)._engine_map.pop(store.db_uri, None)


def _opens(url: str, artifact_root: Path) -> bool:
    try:
        _close(_mlflow_store(url, artifact_root))
    except Exception:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore._engine_map.pop(url, None)
        return False
    return True


def _holds_runs(path: Path) -> bool:
    try:
        with sqlite3.connect(path) as db:
            tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
            return "runs" in tables and db.execute("select count(*) from runs").fetchone()[0] > 0
    except sqlite3.DatabaseError as e:
        raise BenchError(f"tracking store {path}: not an SQLite database ({e}); give another --tracking-uri") from None
