"""Erasure of a source and everything derived from it, crash-safe and verified.

Steps (each idempotent, so a killed erasure is finished on the next open):

1. the source id goes into the compartment's ``pending_erasures`` in the keyring (atomic write);
2. one DuckDB transaction deletes its rows from every table that has a ``source_id`` column
   (found dynamically), rows whose ``source_ids`` list cites it, memory entries and cache entries
   citing it, and turns its ``wb.sources`` row into a tombstone without name or hash;
3. its encrypted file copy and derived cache files are deleted;
4. the database is copied into a new generation under a **new key** (freed pages of the old file
   held the deleted rows), and one keyring write switches to the new generation, destroys the
   source's data key and clears the pending mark; then the old file is removed;
5. every table is queried again for the source id, and the report goes to ``wb.erasures`` and
   the audit trail (counts only).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import duckdb

from workbench.errors import AccessDenied, WorkspaceError
from workbench.workspace import crypto, keyring
from workbench.workspace._fs import FILE_MODE, fsync_dir, remove
from workbench.workspace.consent import source_tables

if TYPE_CHECKING:
    from workbench.workspace.store import Workspace


def _mark_pending(ws: Workspace, source_id: str) -> None:
    def add(data: dict[str, Any]) -> None:
        pend = data["compartments"][ws.compartment].setdefault("pending_erasures", [])
        if source_id not in pend:
            pend.append(source_id)

    keyring.update(ws.root, add)


def _delete_rows(ws: Workspace, source_id: str) -> tuple[dict[str, int], list[str]]:
    con = ws._admin()
    counts: dict[str, int] = {}
    cache_files: list[str] = []
    con.execute("BEGIN TRANSACTION")
    try:
        for table, column in source_tables(con):
            if column == "source_id":
                where = "source_id = ?"
            else:
                where = "list_contains(source_ids, ?)"
            row = con.execute(
                f'SELECT count(*) FROM records.main."{table}" WHERE {where}', [source_id]
            ).fetchone()
            n = int(row[0]) if row else 0
            if n:
                con.execute(f'DELETE FROM records.main."{table}" WHERE {where}', [source_id])
            counts[table] = counts.get(table, 0) + n
        row = con.execute(
            "SELECT count(*) FROM wb.memory WHERE list_contains(source_ids, ?)", [source_id]
        ).fetchone()
        counts["wb.memory"] = int(row[0]) if row else 0
        con.execute("DELETE FROM wb.memory WHERE list_contains(source_ids, ?)", [source_id])
        cache_files = [
            r[0]
            for r in con.execute(
                "SELECT file FROM wb.cache WHERE list_contains(source_ids, ?)", [source_id]
            ).fetchall()
        ]
        counts["wb.cache"] = len(cache_files)
        con.execute("DELETE FROM wb.cache WHERE list_contains(source_ids, ?)", [source_id])
        con.execute(
            "UPDATE wb.grants SET revoked = coalesce(revoked, (now() AT TIME ZONE 'UTC')), note = 'erased' WHERE source_id = ?",
            [source_id],
        )
        con.execute(
            "UPDATE wb.sources SET status = 'erased', erased = (now() AT TIME ZONE 'UTC'), name = NULL, sha256 = NULL, size = NULL "
            "WHERE source_id = ?",
            [source_id],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts, cache_files


def rekey_database(ws: Workspace, *, drop_source: str | None = None) -> int:
    """Copy the records database into a new generation under a fresh key; returns the generation.

    The switch is one keyring write that can also destroy ``drop_source``'s data key and clear
    its pending-erasure mark; the old file is deleted afterwards (or by recovery on next open).
    """
    from workbench.workspace.store import _close_all_instances_for, _sql_str

    entry = ws._compartment_entry()
    old_gen = int(entry["db"]["generation"])
    old_path = ws.compartment_dir / f"records-{old_gen}.duckdb"
    new_gen = old_gen + 1
    new_path = ws.compartment_dir / f"records-{new_gen}.duckdb"
    old_key = ws._db_key(entry)
    new_key = crypto.new_key()
    ws._reopen()
    _close_all_instances_for(os.path.realpath(ws.compartment_dir))
    for stale in ws.compartment_dir.glob(f"records-{new_gen}.duckdb*"):
        remove(stale)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET autoinstall_known_extensions = false")
        try:
            con.execute("LOAD httpfs")
        except duckdb.Error:
            con.execute("SET force_mbedtls_unsafe = true")
        con.execute("SET temp_file_encryption = true")
        con.execute(f"SET temp_directory = {_sql_str(str(ws.tmp_dir))}")
        con.execute(f"ATTACH {_sql_str(str(old_path))} AS old_db (ENCRYPTION_KEY {_sql_str(old_key.hex())})")
        con.execute(f"ATTACH {_sql_str(str(new_path))} AS new_db (ENCRYPTION_KEY {_sql_str(new_key.hex())})")
        con.execute("COPY FROM DATABASE old_db TO new_db")
        con.execute("CHECKPOINT new_db")
        con.execute("DETACH new_db")
        con.execute("DETACH old_db")
    except duckdb.Error as exc:
        raise WorkspaceError(
            f"{old_path}: re-keying the records database failed ({exc}); nothing was lost"
        ) from exc
    finally:
        con.close()
    os.chmod(new_path, FILE_MODE)
    fd = os.open(new_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(ws.compartment_dir)
    wrapped = crypto.wrap(ws._ckey, new_key, name=f"db:{ws.compartment}:{new_gen}")

    def switch(data: dict[str, Any]) -> None:
        comp = data["compartments"][ws.compartment]
        comp["db"] = {"generation": new_gen, "key": wrapped}
        if drop_source is not None:
            comp["sources"].pop(drop_source, None)
            comp["pending_erasures"] = [s for s in comp.get("pending_erasures", []) if s != drop_source]

    keyring.update(ws.root, switch)
    for p in ws.compartment_dir.glob(f"records-{old_gen}.duckdb*"):
        remove(p)
    return new_gen


def _drop_source_key(ws: Workspace, source_id: str) -> None:
    def drop(data: dict[str, Any]) -> None:
        comp = data["compartments"][ws.compartment]
        comp["sources"].pop(source_id, None)
        comp["pending_erasures"] = [s for s in comp.get("pending_erasures", []) if s != source_id]

    keyring.update(ws.root, drop)


def verify_erasure(ws: Workspace, source_id: str) -> dict[str, Any]:
    """Look for any trace of ``source_id`` outside the consent ledger; ``ok`` when none."""
    con = ws._admin()
    remaining: dict[str, int] = {}
    for table, column in source_tables(con):
        where = "source_id = ?" if column == "source_id" else "list_contains(source_ids, ?)"
        row = con.execute(
            f'SELECT count(*) FROM records.main."{table}" WHERE {where}', [source_id]
        ).fetchone()
        if row and row[0]:
            remaining[table] = int(row[0])
    # Any other mention of the id (JSON provenance, free-form columns) in any records table.
    text_cols = con.execute(
        "SELECT table_name, list(column_name) FROM duckdb_columns() WHERE database_name = 'records' "
        "AND schema_name = 'main' AND (data_type = 'VARCHAR' OR data_type = 'JSON' OR data_type LIKE 'VARCHAR[]') "
        "AND column_name NOT IN ('source_id') GROUP BY table_name"
    ).fetchall()
    for table, cols in text_cols:
        cond = " OR ".join(f'contains(CAST("{c}" AS VARCHAR), ?)' for c in cols)
        row = con.execute(
            f'SELECT count(*) FROM records.main."{table}" WHERE {cond}', [source_id] * len(cols)
        ).fetchone()
        if row and row[0]:
            remaining[f"{table} (mentions)"] = int(row[0])
    for table in ("memory", "cache"):
        row = con.execute(
            f"SELECT count(*) FROM wb.{table} WHERE list_contains(source_ids, ?)", [source_id]
        ).fetchone()
        if row and row[0]:
            remaining[f"wb.{table}"] = int(row[0])
    row = con.execute(
        "SELECT count(*) FROM wb.sources WHERE source_id = ? AND (name IS NOT NULL OR sha256 IS NOT NULL)",
        [source_id],
    ).fetchone()
    if row and row[0]:
        remaining["wb.sources"] = int(row[0])
    files = [p.name for p in ws.files_dir.glob(f"{source_id}*")]
    if files:
        remaining["files"] = len(files)
    if source_id in ws._compartment_entry()["sources"]:
        remaining["source_key"] = 1
    return {"source_id": source_id, "ok": not remaining, "remaining": remaining}


def erase_source(
    ws: Workspace, source_id: str, *, reason: str = "requested", compact: bool = True
) -> dict[str, Any]:
    """Erase ``source_id`` and everything derived from it in ``ws``'s compartment; returns a report."""
    if ws.role != "owner":
        raise AccessDenied(f"role {ws.role!r} may not erase data in compartment {ws.compartment!r}")
    con = ws._admin()
    known = con.execute("SELECT count(*) FROM wb.sources WHERE source_id = ?", [source_id]).fetchone()
    pending = source_id in ws._compartment_entry().get("pending_erasures", [])
    if not pending and (not known or not known[0]):
        raise WorkspaceError(
            f"no source {source_id} in compartment {ws.compartment!r}; see `workbench consent list`"
        )
    _mark_pending(ws, source_id)
    ws.audit("erasure.start", source_id=source_id, reason=reason)
    counts, cache_files = _delete_rows(ws, source_id)
    files_deleted = 0
    for p in list(ws.files_dir.glob(f"{source_id}.bin")) + list(ws.files_dir.glob(f".{source_id}.bin.*")):
        files_deleted += int(remove(p))
    for name in cache_files:
        remove(ws.cache_dir / name)
    if compact:
        generation: int | None = rekey_database(ws, drop_source=source_id)
    else:
        generation = None
        _drop_source_key(ws, source_id)
    report = verify_erasure(ws, source_id)
    rows = sum(v for k, v in counts.items() if not k.startswith("wb."))
    full = {
        "source_id": source_id,
        "erased": True,
        "reason": reason,
        "rows_deleted": counts,
        "memory_deleted": counts.get("wb.memory", 0),
        "cache_deleted": counts.get("wb.cache", 0),
        "files_deleted": files_deleted,
        "db_generation": generation,
        "verified": report["ok"],
        "remaining": report["remaining"],
    }
    ws._admin().execute(
        "INSERT INTO wb.erasures VALUES (?, (now() AT TIME ZONE 'UTC'), ?, ?, ?)",
        [source_id, rows, report["ok"], json.dumps(full, default=str)],
    )
    ws.audit(
        "erasure.done",
        source_id=source_id,
        rows=rows,
        memory=full["memory_deleted"],
        cache=full["cache_deleted"],
        copies_deleted=files_deleted,
        verified=report["ok"],
    )
    if not report["ok"]:
        raise WorkspaceError(
            f"erasure of {source_id} in compartment {ws.compartment!r} left traces in "
            f"{sorted(report['remaining'])}; run `workbench erase {source_id}` again"
        )
    return full
