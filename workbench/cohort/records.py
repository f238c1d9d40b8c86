"""Read side of the records tables: summary, pseudonymous patient list, de-identified export, id lookup."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from workbench.cohort.store import RECORD_TABLES, ensure_schema, table_counts
from workbench.errors import RecordsError
from workbench.workspace import Workspace


def summary(ws: Workspace) -> dict[str, Any]:
    """Row counts per records table, the patient count and wellness duplicates (not double counted)."""
    con = ws.connect()
    try:
        tables = table_counts(con)
        # people with a Patient record, plus wellness persons (FHIR rows that name a Patient
        # missing from the import count as subjects, not patients)
        patients = con.execute(
            "SELECT count(DISTINCT patient_id) FROM (SELECT patient_id FROM patients UNION ALL "
            "SELECT patient_id FROM resource_keys WHERE resource_type IN "
            "('apple_health', 'myfitnesspal'))"
        ).fetchone()
        subjects = con.execute("SELECT count(DISTINCT patient_id) FROM resource_keys").fetchone()
        dups = con.execute("SELECT count(*) FROM measurements WHERE duplicate_of IS NOT NULL").fetchone()
        imports = con.execute("SELECT count(*) FROM import_log").fetchone()
    finally:
        con.close()
    return {
        "tables": tables,
        "patients": int(patients[0]) if patients else 0,
        "subjects": int(subjects[0]) if subjects else 0,
        "measurement_duplicates": int(dups[0]) if dups else 0,
        "files_imported": int(imports[0]) if imports else 0,
    }


def _deid() -> Any:
    try:
        from workbench.cohort import deid
    except ImportError as exc:  # pragma: no cover - deid ships with the package
        raise RecordsError("de-identification module is not available") from exc
    return deid


def list_patients(ws: Workspace, *, as_of: date | None = None) -> list[dict[str, Any]]:
    """Every patient as ``{patient, age_band, sex, records}`` with a keyed pseudonymous id (no PHI).

    Listed: people with a Patient resource or wellness data (as counted by :func:`summary`);
    ``records`` counts every stored resource that names them.
    """
    deid = _deid()
    key = deid.workspace_key(ws)
    as_of = as_of or datetime.now(UTC).date()
    con = ws.connect()
    try:
        ensure_schema(con)
        rows = con.execute(
            """
            WITH k AS (
                SELECT patient_id, count(*) AS n,
                       bool_or(resource_type IN ('Patient', 'apple_health', 'myfitnesspal')) AS listed
                FROM resource_keys GROUP BY patient_id
            )
            SELECT k.patient_id, p.birth_date, p.deceased_date, p.gender, k.n
            FROM k LEFT JOIN patients p ON p.patient_id = k.patient_id
            WHERE k.listed
            ORDER BY k.patient_id
            """
        ).fetchall()
    finally:
        con.close()
    out = []
    for pid, birth, death, gender, n in rows:
        age = None
        if birth is not None:
            end = death or as_of
            age = end.year - birth.year - ((end.month, end.day) < (birth.month, birth.day))
        out.append(
            {
                "patient": deid.pseudonym(key, pid, "patient"),
                "age_band": deid.age_band(age) if age is not None else None,
                "sex": gender,
                "deceased": death is not None,
                "records": int(n),
            }
        )
    out.sort(key=lambda r: r["patient"])
    return out


def resolve_patient(ws: Workspace, patient_ref: str) -> str:
    """Map a pseudonymous id (as ``records patients`` lists) or a raw patient id to the stored patient_id."""
    ref = patient_ref.strip()
    con = ws.connect()
    try:
        ensure_schema(con)
        hit = con.execute("SELECT 1 FROM resource_keys WHERE patient_id = ? LIMIT 1", [ref]).fetchone()
        if hit:
            return ref
        ids = [r[0] for r in con.execute("SELECT DISTINCT patient_id FROM resource_keys").fetchall()]
    finally:
        con.close()
    deid = _deid()
    key = deid.workspace_key(ws)
    for pid in ids:
        if deid.pseudonym(key, pid, "patient") == ref:
            return str(pid)
    # "Patient/abc" and "urn:uuid:abc" name the same patient as "abc"
    bare = re.sub(r"^(urn:uuid:|.*/)", "", ref)
    if bare != ref and bare in ids:
        return bare
    raise RecordsError(
        f"no patient {patient_ref!r} in this workspace; list them with `workbench records patients`"
    )


def export_deidentified(
    ws: Workspace, out: Path | str, *, date_mode: str = "shift", tables: list[str] | None = None
) -> dict[str, Any]:
    """Write every non-empty records table de-identified as Parquet and CSV under ``out``."""
    deid = _deid()
    key = deid.workspace_key(ws)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    con = ws.connect()
    try:
        counts = table_counts(con)
        for table in tables or list(RECORD_TABLES):
            if not counts.get(table):
                continue
            df = deid.deidentified_table(con, table, key, date_mode=date_mode)
            df.to_parquet(out / f"{table}.parquet", index=False)
            df.to_csv(out / f"{table}.csv", index=False)
            written[table] = len(df)
    finally:
        con.close()
    ws.audit("records.export", deidentified=True, date_mode=date_mode, tables=written)
    return {"out": str(out), "tables": written, "date_mode": date_mode}
