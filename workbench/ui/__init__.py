"""Notebook widgets (ipywidgets + plotly) over the workbench's core functions.

``EvidenceSearch``, ``CohortExplorer``, ``CaseExplorer`` and ``WorkspacePanel`` are
``ipywidgets.VBox`` subclasses: display them in JupyterLab or serve a notebook with Voilà.
They hold no domain logic; each callback calls one core function and renders its result.
"""

from workbench.ui.html import answer_card, findings_html, highlight, hits_html
from workbench.ui.progress import ensure_index, import_with_progress
from workbench.ui.widgets import CaseExplorer, CohortExplorer, EvidenceSearch, WorkspacePanel, show_figure

__all__ = [
    "CaseExplorer",
    "CohortExplorer",
    "EvidenceSearch",
    "WorkspacePanel",
    "answer_card",
    "ensure_index",
    "findings_html",
    "highlight",
    "hits_html",
    "import_with_progress",
    "show_figure",
]
