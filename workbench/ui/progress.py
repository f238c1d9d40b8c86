"""Long work with visible progress: importing records and building the evidence index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w
from IPython.display import display

__all__ = ["ensure_index", "import_with_progress"]


def import_with_progress(
    workspace: Any, paths: Sequence[str | Path], *, bar: w.IntProgress | None = None
) -> Any:
    """Import records files into ``workspace`` with an ipywidgets progress bar (one step per file).

    Returns the importer's :class:`~workbench.cohort.importer.ImportResult`.
    """
    from workbench.cohort.importer import import_paths, iter_files

    files = [f for f, _ in iter_files(paths)]
    if bar is None:
        bar = w.IntProgress(description="Importing")
        bar.add_class("wb-progress")
        display(bar)
    bar.min, bar.max, bar.value = 0, max(1, len(files)), 0
    bar.bar_style = ""

    def step(_report: Any) -> None:
        bar.value = min(bar.max, bar.value + 1)

    result = import_paths(workspace, paths, progress=step)
    bar.value = bar.max
    bar.bar_style = "success" if not result.errors else "warning"
    return result


def ensure_index(folder: Path | str | None = None, *, progress: bool = True) -> Any:
    """Open the evidence index (settings' ``index_dir`` by default), building it first when missing.

    The build shows tqdm progress bars (widgets in a notebook); it uses the shipped
    embedding cache, so only passages missing from the cache are encoded.
    """
    from workbench.errors import IndexMissing
    from workbench.retrieval import EvidenceIndex, build_index

    try:
        return EvidenceIndex.load(folder)
    except IndexMissing:
        return build_index(folder=folder, progress=progress)
