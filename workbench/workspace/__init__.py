"""The private health workspace: where records, personal documents and memory live."""

from workbench.workspace.store import Workspace, open_workspace

__all__ = ["Workspace", "open_workspace"]
