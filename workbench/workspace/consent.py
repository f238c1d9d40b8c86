"""Consent ledger and the governed (consent- and role-filtered) read connection.

One grant per source: ``scope`` (resource types, None = all), ``purpose`` (``research`` or
``personal_care``), ``granted_by``, ``expires``. The ledger lives in ``wb.grants`` inside the
compartment's encrypted database, so a grant change commits atomically with the data it governs.

Enforcement is structural, not advisory: ``Workspace.connect(read_only=True)`` returns a
connection where every records table with a ``source_id`` column is shadowed by a temporary view
``SELECT * FROM records.main.<t> WHERE source_id IN (<active grants for purpose and scope>)``.
The filter reads ``wb.active_grants`` at query time, so an expiry takes effect mid-session.
Researchers get de-identified tables instead (see :func:`governed_connection`).
Revoking a grant erases everything derived from the source (:mod:`.erasure`).
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from workbench.errors import AccessDenied, ConsentError, WorkspaceError
from workbench.workspace.audit import current_actor

if TYPE_CHECKING:
    from workbench.workspace.store import Workspace

#: Tables that hold direct identifiers; a researcher never sees them raw.
IDENTIFIABLE_TABLES = frozenset({"patients", "documents", "personal_chunks"})
ROLE_PURPOSE = {"clinician": "personal_care", "researcher": "research"}


def _store() -> Any:
    return importlib.import_module("workbench.workspace.store")


def insert_grant(
    con: duckdb.DuckDBPyConnection,
    source_id: str,
    *,
    purpose: str,
    granted_by: str,
    scope: Iterable[str] | None = None,
    expires: datetime | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Insert one grant row (inside the caller's transaction); returns it."""
    store = _store()
    if purpose not in store.PURPOSES:
        raise ConsentError(
            f"unknown purpose {purpose!r} for source {source_id}; use research or personal_care"
        )
    expires = store.to_utc_naive(expires)
    scope_list = sorted(set(scope)) if scope is not None else None
    grant = {
        "grant_id": store.new_id("grant"),
        "source_id": source_id,
        "scope": scope_list,
        "purpose": purpose,
        "granted_by": granted_by,
        "granted": store.utcnow(),
        "expires": expires,
    }
    con.execute(
        "INSERT INTO wb.grants VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
        [
            grant["grant_id"],
            source_id,
            scope_list,
            purpose,
            granted_by,
            grant["granted"],
            expires,
            note,
        ],
    )
    return grant


class ConsentLedger:
    """Grants of one compartment."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def grant(
        self,
        source_id: str,
        *,
        purpose: str = "personal_care",
        scope: Iterable[str] | None = None,
        granted_by: str | None = None,
        expires: datetime | None = None,
    ) -> dict[str, Any]:
        """Grant use of a registered source for ``purpose`` (replaces an active grant of that purpose)."""
        if self.ws.role != "owner":
            raise AccessDenied(f"role {self.ws.role!r} may not change consent")
        con = self.ws._admin()
        row = con.execute("SELECT status FROM wb.sources WHERE source_id = ?", [source_id]).fetchone()
        if row is None or row[0] != "active":
            raise ConsentError(
                f"source {source_id} is not registered in compartment {self.ws.compartment!r} "
                "(import it first; erased sources must be imported again)"
            )
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "UPDATE wb.grants SET revoked = ?, revoked_by = ?, note = 'superseded' "
                "WHERE source_id = ? AND purpose = ? AND revoked IS NULL",
                [_store().utcnow(), granted_by or current_actor(), source_id, purpose],
            )
            grant = insert_grant(
                con,
                source_id,
                purpose=purpose,
                granted_by=granted_by or current_actor(),
                scope=scope,
                expires=expires,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.ws.audit(
            "consent.grant",
            source_id=source_id,
            grant_id=grant["grant_id"],
            purpose=purpose,
            scope=grant["scope"],
            expires=expires,
        )
        return grant

    def list(self, *, include_revoked: bool = True) -> builtins.list[dict[str, Any]]:
        """Every grant (newest first) with an ``active`` flag."""
        sql = (
            "SELECT g.*, (g.revoked IS NULL AND (g.expires IS NULL OR g.expires > (now() AT TIME ZONE 'UTC'))) AS active, "
            "s.kind, s.status AS source_status FROM wb.grants g LEFT JOIN wb.sources s USING (source_id)"
        )
        if not include_revoked:
            sql += " WHERE g.revoked IS NULL"
        cur = self.ws._admin().execute(sql + " ORDER BY g.granted DESC")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def active_sources(
        self, purpose: str | None = None, *, resource_type: str | None = None
    ) -> builtins.list[str]:
        """Source ids with an active grant (for ``purpose`` / ``resource_type`` when given)."""
        sql = "SELECT DISTINCT source_id FROM wb.active_grants WHERE 1=1"
        params: list[Any] = []
        if purpose is not None:
            sql += " AND purpose = ?"
            params.append(purpose)
        if resource_type is not None:
            sql += " AND (scope IS NULL OR list_contains(scope, ?))"
            params.append(resource_type)
        rows = self.ws._admin().execute(sql + " ORDER BY source_id", params).fetchall()
        return [r[0] for r in rows]

    def require(self, source_id: str, purpose: str) -> None:
        """Raise :class:`ConsentError` unless ``source_id`` may be used for ``purpose`` now."""
        if source_id not in self.active_sources(purpose):
            raise ConsentError(
                f"source {source_id} has no active consent for {purpose} in compartment "
                f"{self.ws.compartment!r}; grant it with `workbench consent grant {source_id}`"
            )

    def revoke(self, source_id: str, *, erase: bool = True, revoked_by: str | None = None) -> dict[str, Any]:
        """Revoke every grant of ``source_id`` and (by default) erase everything derived from it.

        Returns the erasure report (see :func:`workbench.workspace.erasure.erase_source`).
        """
        if self.ws.role != "owner":
            raise AccessDenied(f"role {self.ws.role!r} may not change consent")
        from workbench.workspace.erasure import erase_source

        who = revoked_by or current_actor()
        con = self.ws._admin()
        n = con.execute(
            "SELECT count(*) FROM wb.grants WHERE source_id = ? AND revoked IS NULL", [source_id]
        ).fetchone()
        known = con.execute("SELECT count(*) FROM wb.sources WHERE source_id = ?", [source_id]).fetchone()
        if not known or known[0] == 0:
            raise ConsentError(f"no source {source_id} in compartment {self.ws.compartment!r}")
        con.execute(
            "UPDATE wb.grants SET revoked = ?, revoked_by = ? WHERE source_id = ? AND revoked IS NULL",
            [_store().utcnow(), who, source_id],
        )
        self.ws.audit("consent.revoke", source_id=source_id, grants=int(n[0]) if n else 0)
        if not erase:
            return {"source_id": source_id, "erased": False}
        return erase_source(self.ws, source_id, reason="consent revoked")


def source_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(table, provenance column) for every base table in ``records.main`` that names its sources."""
    rows = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = 'records' "
        "AND schema_name = 'main' AND column_name IN ('source_id', 'source_ids') ORDER BY table_name"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _filter_sql(table: str, column: str, purposes: list[str] | None) -> str:
    types = _store().TABLE_RESOURCE_TYPES.get(table)
    cond = ["1=1"]
    if purposes is not None:
        cond.append("purpose IN (" + ", ".join(f"'{p}'" for p in purposes) + ")")
    if types:
        alts = " OR ".join(f"list_contains(scope, '{t}')" for t in types)
        cond.append(f"(scope IS NULL OR {alts})")
    where = " AND ".join(cond)
    if column == "source_ids":
        # Rows derived from several sources stay visible only while every one of them is.
        active_list = f"(SELECT coalesce(list(source_id), []) FROM records.wb.active_grants WHERE {where})"
        return f'SELECT * FROM records.main."{table}" WHERE list_has_all({active_list}, source_ids)'
    active = f"SELECT source_id FROM records.wb.active_grants WHERE {where}"
    return f'SELECT * FROM records.main."{table}" WHERE source_id IN ({active})'


def governed_connection(ws: Workspace, *, purpose: str | None = None) -> duckdb.DuckDBPyConnection:
    """The read connection for ``ws.role`` (see the module docstring)."""
    role = ws.role
    if role in ROLE_PURPOSE:
        if purpose is not None and purpose != ROLE_PURPOSE[role]:
            raise AccessDenied(
                f"role {role!r} may only read for purpose {ROLE_PURPOSE[role]!r}, not {purpose!r}"
            )
        purpose = ROLE_PURPOSE[role]
    if purpose is not None and purpose not in _store().PURPOSES:
        raise ConsentError(f"unknown purpose {purpose!r}; use research or personal_care")
    purposes = [purpose] if purpose is not None else None
    if role == "clinician":
        ledger = ConsentLedger(ws)
        if not ledger.active_sources("personal_care") and ledger.active_sources():
            raise AccessDenied(
                f"compartment {ws.compartment!r} has no source consented for personal care; "
                "a clinician may not read it"
            )
    cur = ws._admin()
    tables = source_tables(cur)
    filtered = {t: _filter_sql(t, c, purposes) for t, c in tables}
    if role != "researcher":
        for table, sql in filtered.items():
            cur.execute(f'CREATE OR REPLACE TEMP VIEW "{table}" AS {sql}')
        ws.audit("query.connect", purpose=purpose, tables=len(filtered))
        return cur
    _researcher_views(ws, cur, filtered)
    ws.audit("query.connect", purpose=purpose, tables=len(filtered), deidentified=True)
    return cur


def _researcher_views(ws: Workspace, cur: duckdb.DuckDBPyConnection, filtered: dict[str, str]) -> None:
    """Replace every records table by its de-identified, consent-filtered version."""
    deid = _deid_module()
    if deid is None:
        for table, sql in filtered.items():
            if table in IDENTIFIABLE_TABLES:
                msg = f"AccessDenied: researchers may not read identifiable table {table}"
                cur.execute(f"CREATE OR REPLACE TEMP VIEW \"{table}\" AS SELECT error('{msg}') AS denied")
            else:
                cur.execute(f'CREATE OR REPLACE TEMP VIEW "{table}" AS {sql}')
        return
    # De-identification reads through a consent-filtered owner view, then the researcher's
    # connection only ever holds the de-identified frames.
    src = ws._admin()
    for table, sql in filtered.items():
        src.execute(f'CREATE OR REPLACE TEMP VIEW "{table}" AS {sql}')
    key = _deid_key(ws, deid)
    for table in filtered:
        try:
            frame = deid.deidentified_table(src, table, key)
        except Exception as exc:  # noqa: BLE001 - any failure must deny, never leak raw rows
            msg = f"AccessDenied: de-identification of {table} failed ({type(exc).__name__})"
            cur.execute(f"CREATE OR REPLACE TEMP VIEW \"{table}\" AS SELECT error('{msg}') AS denied")
            continue
        cur.register(f"_deid_{table}", frame)
        cur.execute(f'CREATE OR REPLACE TEMP TABLE "{table}" AS SELECT * FROM "_deid_{table}"')
        cur.unregister(f"_deid_{table}")
    src.close()


def _deid_module() -> Any | None:
    """``workbench.cohort.deid`` when installed (workspace must not import cohort at import time)."""
    try:
        mod = importlib.import_module("workbench.cohort.deid")
    except ImportError:
        return None
    return mod if hasattr(mod, "deidentified_table") else None


def _deid_key(ws: Workspace, deid: Any) -> bytes:
    if hasattr(deid, "workspace_key"):
        key: bytes = deid.workspace_key(ws)
        return key
    return ws.secret("deid")


def check_role(ws: Workspace, *, allowed: Iterable[str], what: str) -> None:
    """Raise :class:`AccessDenied` unless ``ws.role`` is one of ``allowed``."""
    if ws.role not in set(allowed):
        raise AccessDenied(f"role {ws.role!r} may not {what} in compartment {ws.compartment!r}")


__all__ = [
    "ConsentLedger",
    "IDENTIFIABLE_TABLES",
    "WorkspaceError",
    "check_role",
    "governed_connection",
    "insert_grant",
    "source_tables",
]
