"""Demo setup for the notebooks and the clinician app: a workspace with the synthetic fixtures, benchmark results.

Everything here is a thin call into the core (open a workspace, import records, run the
retrieval benchmark script) so that the notebooks themselves hold no logic.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.settings import PROJECT_ROOT, Settings

__all__ = ["DEMO_RECORDS", "demo_workspace", "retrieval_results"]

#: Synthetic Synthea patients shipped with the tests (no real PHI).
DEMO_RECORDS = PROJECT_ROOT / "tests" / "fixtures" / "fhir" / "bundles"
#: A tiny BEIR-format set used when no benchmark results exist yet.
TINY_BEIR = PROJECT_ROOT / "tests" / "fixtures" / "ui" / "beir_tiny"


def demo_workspace(
    name: str = "demo-workspace",
    *,
    records: Sequence[str | Path] | None = None,
    folder: Path | str | None = None,
    progress: bool = True,
) -> Any:
    """Open (creating it) a workspace under ``WB_HOME`` and import the demo records into it.

    Re-importing files already imported adds nothing, so this is cheap on the second run.
    The passphrase comes from ``WB_PASSPHRASE`` as for every workspace.
    """
    from workbench.cohort.importer import import_paths
    from workbench.workspace import open_workspace

    ws = open_workspace(Path(folder) if folder else Settings().home / name)
    paths = list(records) if records is not None else [DEMO_RECORDS]
    if progress:
        from workbench.ui.progress import import_with_progress

        import_with_progress(ws, paths)
    else:
        import_paths(ws, paths)
    from workbench.ui.widgets import release_database

    release_database(ws)  # other notebooks and app pages may open the same workspace
    return ws


def retrieval_results(
    path: Path | str | None = None, *, beir_dir: Path | str | None = None, out_dir: Path | str | None = None
) -> dict[str, Any]:
    """The retrieval benchmark's JSON: ``bench/results/retrieval.json`` if present, else a fresh small run.

    The small run executes ``bench/retrieval.py`` on ``beir_dir`` (default: the tiny fixture
    set) in a subprocess and reads what it wrote; its numbers say nothing about quality on
    real data and the result carries ``"source": "tiny fixture"`` to say so.
    """
    results = Path(path) if path else PROJECT_ROOT / "bench" / "results" / "retrieval.json"
    if results.exists():
        data: dict[str, Any] = json.loads(results.read_text(encoding="utf-8"))
        data.setdefault("source", str(results))
        return data
    out = Path(out_dir or tempfile.mkdtemp(prefix="wb-retrieval-")) / "retrieval.json"
    subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "bench" / "retrieval.py"),
            "--beir-dir",
            str(beir_dir or TINY_BEIR),
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(out.read_text(encoding="utf-8"))
    data["source"] = "tiny fixture"
    return data
