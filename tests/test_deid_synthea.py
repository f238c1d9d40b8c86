"""A de-identified export of real Synthea patients leaks none of their identifiers.

The patients are imported through the real importer into an encrypted workspace; every
records table goes through :func:`deidentified_table` (notes through the text de-identifier)
and the export is searched for every name, street line, phone, e-mail, SSN, identifier value
and (in the patient's own rows) exact birth date found in the source files.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from workbench.cohort.deid import deidentified_table, k_anonymity, pseudonym, workspace_key
from workbench.cohort.importer import import_paths
from workbench.cohort.store import RECORD_TABLES, table_counts
from workbench.workspace import open_workspace

FHIR = Path(__file__).parent / "fixtures" / "fhir"


def _patients_in_sources() -> list[dict[str, Any]]:
    out = []
    for f in sorted((FHIR / "bundles").glob("*.json.gz")):
        for e in json.loads(gzip.decompress(f.read_bytes()))["entry"]:
            if e["resource"]["resourceType"] == "Patient":
                out.append(e["resource"])
    for f in sorted((FHIR / "ndjson").glob("Patient.*.ndjson.gz")):
        for line in gzip.decompress(f.read_bytes()).decode("utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _identifiers(p: dict[str, Any]) -> dict[str, set[str]]:
    """Every identifying string of one Patient resource, by kind."""
    names: set[str] = set()
    for n in p.get("name", []):
        for part in [n.get("family", ""), *n.get("given", [])]:
            if part:
                names.add(part)
                names.add(re.sub(r"\d+$", "", part))  # Synthea appends digits; notes may not
    lines = {line for a in p.get("address", []) for line in a.get("line", [])}
    cities = {a["city"] for a in p.get("address", []) if a.get("city")}
    telecom = {t["value"] for t in p.get("telecom", []) if t.get("value")}
    ids = {i["value"] for i in p.get("identifier", []) if i.get("value")}
    return {
        "names": {n for n in names if len(n) >= 3},
        "lines": lines,
        "cities": cities,
        "telecom": telecom,
        "ids": ids | {p["id"]},
    }


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    mp = pytest.MonkeyPatch()
    mp.setenv("WB_PASSPHRASE", "synthea export test")
    mp.setenv("WB_KDF_PROFILE", "fast")
    try:
        ws = open_workspace(tmp_path_factory.mktemp("synthea") / "ws")
        result = import_paths(ws, [FHIR / "bundles", FHIR / "ndjson"])
        assert result.patients >= 6
        key = workspace_key(ws)
        con = ws.connect()
        try:
            counts = table_counts(con)
            frames = {
                t: deidentified_table(con, t, key, as_of=date(2025, 1, 1))
                for t in RECORD_TABLES
                if counts.get(t)
            }
        finally:
            con.close()
        frames["_key"] = pd.DataFrame({"key": [key.hex()]})
        ws.close()
    finally:
        mp.undo()
    return frames


def _blob(frames: dict[str, pd.DataFrame], *, patient: str | None = None) -> str:
    parts = []
    for name, df in frames.items():
        if name.startswith("_"):
            continue
        if patient is not None and "patient_id" in df.columns:
            df = df[df["patient_id"] == patient]
        parts.append(df.to_csv(index=False))
    return "\n".join(parts)


def test_export_covers_the_imported_tables(export: dict[str, pd.DataFrame]) -> None:
    for table in ("patients", "encounters", "observations", "conditions", "documents"):
        assert table in export and len(export[table]) > 0, table
    pats = export["patients"]
    assert {"zip3", "age_band", "gender"} <= set(pats.columns)
    assert pats["patient_id"].str.fullmatch(r"P-[0-9a-f]{12}").all()
    # Joins survive: every encounter's patient is a listed patient.
    assert set(export["encounters"]["patient_id"]) <= set(pats["patient_id"])
    # Notes were kept, de-identified, not dropped.
    assert export["documents"]["text"].notna().any()


def test_no_identifier_from_the_sources_survives(export: dict[str, pd.DataFrame]) -> None:
    blob = _blob(export)
    patients = _patients_in_sources()
    assert len(patients) >= 6
    checked = 0
    for p in patients:
        ids = _identifiers(p)
        for kind in ("names", "lines", "telecom", "ids", "cities"):
            for value in ids[kind]:
                pattern = rf"(?<![\w-]){re.escape(value)}(?![\w-])"
                assert re.search(pattern, blob) is None, f"a {kind} value of a source patient leaked"
                checked += 1
        for value in ids["telecom"]:
            digits = re.sub(r"\D", "", value)
            if len(digits) >= 7:
                # The same phone written any other way: (555) 123 4567, 555.123.4567, ...
                spaced = r"(?<!\d)" + r"[\s().-]*".join(digits) + r"(?!\d)"
                assert re.search(spaced, blob) is None, "a phone number of a source patient leaked"
    assert checked > 30


def test_no_exact_birth_date_with_its_patient(export: dict[str, pd.DataFrame]) -> None:
    key = bytes.fromhex(export["_key"]["key"][0])
    for p in _patients_in_sources():
        birth = p.get("birthDate")
        if not birth:
            continue
        own = _blob(export, patient=pseudonym(key, p["id"], "patient"))
        assert own, "patient rows missing from the export"
        y, m, d = birth.split("-")
        for form in (birth, f"{int(m)}/{int(d)}/{y}", f"{m}/{d}/{y}"):
            assert form not in own, "an exact birth date stayed with its patient"


def test_patients_are_pseudonymous_and_k_anonymity_reports(export: dict[str, pd.DataFrame]) -> None:
    pats = export["patients"]
    report = k_anonymity(pats, threshold=2)
    assert report.n_records == len(pats)
    assert report.k >= 1 and report.n_classes >= 1
    assert sum(c["count"] for c in report.small_classes) == report.records_in_small_classes
