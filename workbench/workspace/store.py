"""Workspace storage interface.

A workspace is one folder. Every module that stores personal data goes through this
interface (``connect`` for DuckDB, ``files_dir`` for imported files, ``audit`` for the
trail) so the private-workspace layer can encrypt and govern it in one place.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import duckdb

from workbench.settings import default_home


class Workspace:
    """A workspace folder holding the records database and imported files."""

    DB_NAME = "records.duckdb"

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def db_path(self) -> Path:
        return self.root / self.DB_NAME

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    def connect(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection whose default catalog is the records database."""
        return duckdb.connect(str(self.db_path), read_only=read_only)

    def audit(self, action: str, **meta: Any) -> None:
        """Append an event (metadata only, never PHI) to the audit trail."""
        line = json.dumps({"ts": time.time(), "action": action, **meta}, sort_keys=True, default=str)
        with open(self.root / "audit.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def register_source(self, source_file: Path | str, *, kind: str, sha256: str) -> str:
        """Record an imported source and return its id (stable for the same content)."""
        source_id = f"src-{sha256[:16]}"
        reg = self.root / "sources.jsonl"
        line = json.dumps(
            {"source_id": source_id, "kind": kind, "sha256": sha256, "name": Path(source_file).name}
        )
        with open(reg, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        return source_id

    def close(self) -> None:
        """Release resources (nothing to release for a plain folder)."""


def open_workspace(path: Path | str | None = None, *, create: bool = True) -> Workspace:
    """Open (and by default create) the workspace at ``path`` (default ``WB_HOME/workspace``)."""
    root = Path(path) if path is not None else default_home() / "workspace"
    if create:
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
    return Workspace(root)
