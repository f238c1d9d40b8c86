"""Portability: export a compartment as FHIR R4 bundles (one per patient) and CSV (one per table).

Exports read through the governed connection of the workspace's role, so they hold only rows of
sources with active consent, and a researcher's export is de-identified. The output is plaintext
by design (it is meant to leave the workspace), so it must go to a folder outside the workspace.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from workbench.errors import WorkspaceError
from workbench.workspace._fs import FILE_MODE, private_dir

if TYPE_CHECKING:
    from workbench.workspace.store import Workspace

FORMATS = ("fhir", "csv")


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _clean(obj: Any) -> Any:
    """Drop None, empty lists and empty dicts recursively (FHIR forbids empty elements)."""
    if isinstance(obj, dict):
        out = {k: _clean(v) for k, v in obj.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {}, "")}
    if isinstance(obj, list):
        items = [_clean(v) for v in obj]
        return [v for v in items if v not in (None, [], {}, "")]
    return _iso(obj)


def _cc(system: Any, code: Any, display: Any = None) -> dict[str, Any] | None:
    if code is None and display is None:
        return None
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _ref(kind: str, rid: Any) -> dict[str, Any] | None:
    return {"reference": f"{kind}/{rid}"} if rid else None


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    try:
        cur = con.execute(f'SELECT * FROM "{table}"')
    except duckdb.CatalogException:
        return []
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _patient(r: dict[str, Any]) -> dict[str, Any]:
    pid = r.get("patient_id") or r.get("resource_id")
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"type": {"text": "MRN"}, "value": r.get("mrn")}] if r.get("mrn") else [],
        "name": [{"family": r.get("family"), "given": [r.get("given")], "prefix": [r.get("prefix")]}],
        "gender": r.get("gender"),
        "birthDate": r.get("birth_date"),
        "deceasedDateTime": r.get("deceased_date"),
        "address": [
            {
                "line": [r.get("address_line")],
                "city": r.get("city"),
                "state": r.get("state"),
                "postalCode": r.get("postal_code"),
                "country": r.get("country"),
            }
        ],
        "telecom": [
            {"system": "phone", "value": r.get("phone")} if r.get("phone") else None,
            {"system": "email", "value": r.get("email")} if r.get("email") else None,
        ],
        "maritalStatus": {"text": r.get("marital_status")},
        "communication": [{"language": {"text": r.get("language")}}] if r.get("language") else [],
    }


def _encounter(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": r.get("encounter_id") or r.get("resource_id"),
        "status": r.get("status") or "unknown",
        "class": {"code": r.get("class")},
        "type": [_cc(None, r.get("type_code"), r.get("type_display"))],
        "subject": _ref("Patient", r.get("patient_id")),
        "period": {"start": r.get("start"), "end": r.get("end")},
        "reasonCode": [_cc(None, r.get("reason_code"), r.get("reason_display"))],
        "serviceProvider": {"display": r.get("organization")} if r.get("organization") else None,
    }


def _condition(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": r.get("resource_id"),
        "clinicalStatus": _cc(None, r.get("clinical_status")),
        "verificationStatus": _cc(None, r.get("verification_status")),
        "category": [_cc(None, r.get("category"))],
        "code": _cc(r.get("code_system"), r.get("code"), r.get("display")),
        "subject": _ref("Patient", r.get("patient_id")),
        "encounter": _ref("Encounter", r.get("encounter_id")),
        "onsetDateTime": r.get("onset"),
        "abatementDateTime": r.get("abatement"),
        "recordedDate": r.get("recorded"),
    }


def _value(r: dict[str, Any]) -> dict[str, Any]:
    if r.get("value_num") is not None:
        return {
            "valueQuantity": {
                "value": r["value_num"],
                "unit": r.get("unit"),
                "system": "http://unitsofmeasure.org" if r.get("unit_code") else None,
                "code": r.get("unit_code"),
            }
        }
    if r.get("value_text") is not None:
        return {"valueString": r["value_text"]}
    return {}


def _observations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_id[str(r.get("resource_id"))].append(r)
    out = []
    for rid, group in by_id.items():
        first = group[0]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "status": first.get("status") or "final",
            "category": [_cc(None, first.get("category"))],
            "code": _cc(first.get("code_system"), first.get("code"), first.get("display")),
            "subject": _ref("Patient", first.get("patient_id")),
            "encounter": _ref("Encounter", first.get("encounter_id")),
            "effectiveDateTime": first.get("effective"),
        }
        parts = [r for r in group if r.get("component")]
        if parts:
            obs["component"] = [
                {"code": _cc(first.get("code_system"), r["component"]), **_value(r)} for r in parts
            ]
        else:
            obs.update(_value(first))
            if first.get("ref_low") is not None or first.get("ref_high") is not None:
                obs["referenceRange"] = [
                    {
                        "low": {"value": first.get("ref_low"), "unit": first.get("unit")},
                        "high": {"value": first.get("ref_high"), "unit": first.get("unit")},
                    }
                ]
            if first.get("interpretation"):
                obs["interpretation"] = [_cc(None, first.get("interpretation"))]
        out.append(obs)
    return out


def _medication(r: dict[str, Any]) -> dict[str, Any]:
    statement = r.get("kind") == "statement"
    res = {
        "resourceType": "MedicationStatement" if statement else "MedicationRequest",
        "id": r.get("resource_id"),
        "status": r.get("status") or "unknown",
        "medicationCodeableConcept": _cc(r.get("code_system"), r.get("code"), r.get("display")),
        "subject": _ref("Patient", r.get("patient_id")),
        "reasonCode": [_cc(None, r.get("reason_code"))],
    }
    if statement:
        res["dateAsserted"] = r.get("authored")
        res["context"] = _ref("Encounter", r.get("encounter_id"))
    else:
        res["intent"] = r.get("intent") or "order"
        res["authoredOn"] = r.get("authored")
        res["encounter"] = _ref("Encounter", r.get("encounter_id"))
        res["dosageInstruction"] = [{"text": r.get("dosage_text")}] if r.get("dosage_text") else []
    return res


def _immunization(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Immunization",
        "id": r.get("resource_id"),
        "status": r.get("status") or "completed",
        "vaccineCode": _cc(r.get("code_system"), r.get("code"), r.get("display")),
        "patient": _ref("Patient", r.get("patient_id")),
        "encounter": _ref("Encounter", r.get("encounter_id")),
        "occurrenceDateTime": r.get("occurrence"),
    }


def _procedure(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": r.get("resource_id"),
        "status": r.get("status") or "completed",
        "code": _cc(r.get("code_system"), r.get("code"), r.get("display")),
        "subject": _ref("Patient", r.get("patient_id")),
        "encounter": _ref("Encounter", r.get("encounter_id")),
        "performedPeriod": {"start": r.get("performed_start"), "end": r.get("performed_end")},
        "reasonCode": [_cc(None, r.get("reason_code"))],
    }


def _allergy(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": r.get("resource_id"),
        "clinicalStatus": _cc(None, r.get("clinical_status")),
        "criticality": r.get("criticality"),
        "category": [r.get("category")],
        "code": _cc(r.get("code_system"), r.get("code"), r.get("display")),
        "patient": _ref("Patient", r.get("patient_id")),
        "recordedDate": r.get("recorded"),
    }


_PER_ROW = {
    "encounters": _encounter,
    "conditions": _condition,
    "medications": _medication,
    "immunizations": _immunization,
    "procedures": _procedure,
    "allergies": _allergy,
}


def fhir_bundles(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """One FHIR R4 ``collection`` Bundle per patient id, built from the records tables."""
    resources: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(con, "patients"):
        pid = str(r.get("patient_id") or r.get("resource_id"))
        resources[pid].insert(0, _patient(r))
    for table, build in _PER_ROW.items():
        for r in _rows(con, table):
            resources[str(r.get("patient_id"))].append(build(r))
    obs_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(con, "observations"):
        obs_rows[str(r.get("patient_id"))].append(r)
    for pid, rows in obs_rows.items():
        resources[pid].extend(_observations(rows))
    bundles = {}
    for pid, items in resources.items():
        bundles[pid] = _clean(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"fullUrl": f"urn:uuid:{res.get('id')}", "resource": res}
                    for res in items
                    if res.get("id")
                ],
            }
        )
    return bundles


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def export_compartment(ws: Workspace, out: Path | str, *, formats: Iterable[str] = FORMATS) -> dict[str, Any]:
    """Write ``out/fhir/<patient>.json`` and ``out/csv/<table>.csv``; returns counts."""
    out = Path(out).expanduser().resolve()
    fmts = list(formats)
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise WorkspaceError(f"unknown export format(s) {bad}; use fhir and/or csv")
    root = ws.root.resolve()
    if out == root or root in out.parents:
        raise WorkspaceError(f"{out}: export into a folder outside the workspace (exports are not encrypted)")
    con = ws.connect(read_only=True)
    report: dict[str, Any] = {"compartment": ws.compartment, "role": ws.role, "out": str(out)}
    private_dir(out)
    if "fhir" in fmts:
        folder = private_dir(out / "fhir")
        bundles = fhir_bundles(con)
        for pid, bundle in bundles.items():
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pid)
            _write(folder / f"{safe}.json", json.dumps(bundle, indent=1, ensure_ascii=False).encode())
        report["bundles"] = len(bundles)
        report["resources"] = sum(len(b.get("entry", [])) for b in bundles.values())
    if "csv" in fmts:
        folder = private_dir(out / "csv")
        tables = ws.tables()
        written = {}
        for table in sorted(set(tables)):
            if table.startswith("_"):
                continue
            target = folder / f"{table}.csv"
            try:
                con.execute(
                    f"COPY (SELECT * FROM \"{table}\") TO {_sql_str(str(target))} (HEADER, DELIMITER ',')"
                )
            except duckdb.Error:
                target.unlink(missing_ok=True)
                continue  # e.g. a table this role may not read: nothing is written for it
            os.chmod(target, FILE_MODE)
            row = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            written[table] = int(row[0]) if row else 0
        report["csv_tables"] = written
    ws.audit(
        "export",
        formats=fmts,
        out_dir=str(out),
        bundles=report.get("bundles", 0),
        tables=len(report.get("csv_tables", {})),
    )
    return report
