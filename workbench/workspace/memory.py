"""Conversation memory of one compartment: questions, answers and notes, each naming its sources.

Entries live in ``wb.memory`` inside the compartment's encrypted database, so memory never
crosses compartments. Every entry lists the ``source_ids`` it used; erasing a source deletes
every entry that cites it, and retention purges entries older than the compartment's limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from workbench.errors import AccessDenied

if TYPE_CHECKING:
    from workbench.workspace.store import Workspace


@dataclass(slots=True)
class MemoryEntry:
    """One remembered message or answer."""

    entry_id: str
    conversation_id: str
    created: datetime
    role: str
    kind: str
    text: str
    source_ids: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class ConversationMemory:
    """Read and write conversation memory (``ws.memory``)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def add(
        self,
        text: str,
        *,
        role: str = "assistant",
        source_ids: Iterable[str] = (),
        conversation_id: str | None = None,
        kind: str = "message",
        meta: dict[str, Any] | None = None,
        created: datetime | None = None,
    ) -> str:
        """Remember ``text`` (kind ``message``, ``answer`` or ``note``); returns the entry id."""
        from workbench.workspace.store import new_id, utcnow

        if self.ws.role == "researcher" and kind != "answer":
            raise AccessDenied("researchers may only save answers to memory")
        entry_id = new_id("mem")
        self.ws._admin().execute(
            "INSERT INTO wb.memory VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                entry_id,
                conversation_id or "default",
                created or utcnow(),
                role,
                kind,
                text,
                sorted(set(source_ids)),
                json.dumps(meta or {}),
            ],
        )
        self.ws.audit("memory.add", entry_id=entry_id, kind=kind, sources=len(set(source_ids)))
        return entry_id

    def entries(self, conversation_id: str | None = None, *, limit: int | None = None) -> list[MemoryEntry]:
        """Entries oldest first (only those whose sources all still have active consent)."""
        active = set(self.ws.active_sources())
        sql = "SELECT entry_id, conversation_id, created, role, kind, text, source_ids, meta FROM wb.memory"
        params: list[Any] = []
        if conversation_id is not None:
            sql += " WHERE conversation_id = ?"
            params.append(conversation_id)
        rows = self.ws._admin().execute(sql + " ORDER BY created, entry_id", params).fetchall()
        out = [
            MemoryEntry(r[0], r[1], r[2], r[3], r[4], r[5], list(r[6] or []), json.loads(r[7] or "{}"))
            for r in rows
            if set(r[6] or []) <= active
        ]
        return out[-limit:] if limit else out

    def forget(self, entry_id: str) -> bool:
        """Delete one entry; True when it existed."""
        cur = self.ws._admin()
        n = cur.execute("SELECT count(*) FROM wb.memory WHERE entry_id = ?", [entry_id]).fetchone()
        cur.execute("DELETE FROM wb.memory WHERE entry_id = ?", [entry_id])
        self.ws.audit("memory.forget", entry_id=entry_id)
        return bool(n and n[0])

    def purge_older_than(self, days: float) -> int:
        """Delete entries older than ``days``; returns how many went."""
        from workbench.workspace.store import utcnow

        cutoff = utcnow() - timedelta(days=days)
        cur = self.ws._admin()
        row = cur.execute("SELECT count(*) FROM wb.memory WHERE created < ?", [cutoff]).fetchone()
        n = int(row[0]) if row else 0
        if n:
            cur.execute("DELETE FROM wb.memory WHERE created < ?", [cutoff])
        return n

    def __len__(self) -> int:
        row = self.ws._admin().execute("SELECT count(*) FROM wb.memory").fetchone()
        return int(row[0]) if row else 0
