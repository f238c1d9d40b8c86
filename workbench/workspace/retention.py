"""Retention policy per compartment: conversation memory and cached answers older than N days go.

The limit lives in the keyring entry of the compartment (``retention_days``; None keeps all).
It is applied every time the workspace is opened and by ``workbench workspace retention --apply``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from workbench.errors import AccessDenied, WorkspaceError
from workbench.workspace import keyring
from workbench.workspace._fs import remove

if TYPE_CHECKING:
    from workbench.workspace.store import Workspace


def get_retention(ws: Workspace) -> float | None:
    """Days conversation memory is kept in this compartment (None = forever)."""
    days = ws._compartment_entry().get("retention_days")
    return None if days is None else float(days)


def set_retention(ws: Workspace, days: float | None) -> None:
    """Set (or with None clear) the compartment's retention limit."""
    if ws.role != "owner":
        raise AccessDenied(f"role {ws.role!r} may not change retention")
    if days is not None and days < 0:
        raise WorkspaceError(f"retention must be zero or more days, not {days}")

    def change(data: dict[str, Any]) -> None:
        data["compartments"][ws.compartment]["retention_days"] = days

    keyring.update(ws.root, change)
    ws.audit("retention.set", days=days)


def apply_retention(ws: Workspace, *, on_open: bool = False) -> dict[str, int]:
    """Purge memory and cache entries older than the limit; returns counts."""
    days = get_retention(ws)
    if days is None or ws.role != "owner":
        return {"memory": 0, "cache": 0}
    from workbench.workspace.store import utcnow

    purged = ws.memory.purge_older_than(days)
    cutoff = utcnow() - timedelta(days=days)
    con = ws._admin()
    old = [r[0] for r in con.execute("SELECT file FROM wb.cache WHERE created < ?", [cutoff]).fetchall()]
    if old:
        con.execute("DELETE FROM wb.cache WHERE created < ?", [cutoff])
        for name in old:
            remove(ws.cache_dir / name)
    if purged or old or not on_open:
        ws.audit("retention.apply", days=days, memory=purged, cache=len(old), on_open=on_open)
    return {"memory": purged, "cache": len(old)}
