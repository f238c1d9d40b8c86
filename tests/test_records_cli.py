"""`workbench records ...` through the real CLI entry point, on real workspace folders."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from workbench.cli import main

FHIR = Path(__file__).parent / "fixtures" / "fhir"


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_PASSPHRASE", "correct horse battery staple")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_import_then_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(tmp_path / "ws")
    code, data = _run(capsys, "records", "import", str(FHIR), "--workspace", ws, "--json")
    assert code == 0, data["errors"]
    assert data["patients"] == 6
    assert data["unknown_types"]["Organization"] >= 1
    code, summary = _run(capsys, "records", "summary", "--workspace", ws, "--json")
    assert code == 0
    assert summary["patients"] == 6
    n_enc = 0
    for f in (FHIR / "bundles").glob("*.json.gz"):
        n_enc += sum(
            1
            for e in json.loads(gzip.decompress(f.read_bytes()))["entry"]
            if e["resource"]["resourceType"] == "Encounter"
        )
    n_enc += sum(1 for _ in gzip.open(FHIR / "ndjson" / "Encounter.000.ndjson.gz"))
    assert summary["tables"]["encounters"] == n_enc
    assert set(summary["tables"]) >= {"patients", "observations", "measurements", "documents"}
    # importing again adds nothing
    code, again = _run(capsys, "records", "import", str(FHIR), "--workspace", ws, "--json")
    assert code == 0 and again["rows"] == {} and again["patients"] == 0
    code, summary2 = _run(capsys, "records", "summary", "--workspace", ws, "--json")
    assert summary2["tables"] == summary["tables"]


def test_import_reports_errors_with_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "in" / "broken.json"
    bad.parent.mkdir()
    bad.write_text('{"resourceType": "Bundle", "entry": [')
    code = main(["records", "import", str(bad.parent), "--workspace", str(tmp_path / "ws"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert "broken.json" in data["errors"][0]["message"]
    assert "not valid JSON" in data["errors"][0]["message"]


def test_patients_are_pseudonymous_and_resolve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cohort.records import resolve_patient
    from workbench.errors import RecordsError
    from workbench.workspace import open_workspace

    ws = str(tmp_path / "ws")
    main(["records", "import", str(FHIR / "bundles"), "--workspace", ws, "--json"])
    capsys.readouterr()
    code, rows = _run(capsys, "records", "patients", "--workspace", ws, "--json")
    assert code == 0 and len(rows) == 4
    raw_ids, families = set(), set()
    for f in (FHIR / "bundles").glob("*.json.gz"):
        for e in json.loads(gzip.decompress(f.read_bytes()))["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Patient":
                raw_ids.add(r["id"])
                families.add(r["name"][0]["family"])
    text = json.dumps(rows)
    assert not any(i in text for i in raw_ids) and not any(n in text for n in families)
    for r in rows:
        assert r["patient"].startswith("P-") and r["sex"] in ("male", "female")
        assert r["age_band"] and r["records"] > 0
    # the same pseudonym on every call; it and the raw id resolve to the stored id
    _, again = _run(capsys, "records", "patients", "--workspace", ws, "--json")
    assert again == rows
    handle = open_workspace(ws)
    resolved = {resolve_patient(handle, r["patient"]) for r in rows}
    assert resolved == raw_ids
    some = sorted(raw_ids)[0]
    assert resolve_patient(handle, some) == some
    assert resolve_patient(handle, f"Patient/{some}") == some
    with pytest.raises(RecordsError, match="records patients"):
        resolve_patient(handle, "P-000000000000")


def test_export_deidentified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(tmp_path / "ws")
    main(["records", "import", str(FHIR / "bundles"), "--workspace", ws, "--json"])
    capsys.readouterr()
    out = tmp_path / "export"
    code = main(["records", "export", "--workspace", ws, "--out", str(out)])
    capsys.readouterr()
    assert code == 2  # --deidentified is required
    code, data = _run(
        capsys, "records", "export", "--workspace", ws, "--deidentified", "--out", str(out), "--json"
    )
    assert code == 0
    assert data["tables"]["patients"] == 4 and data["tables"]["observations"] > 0
    for table in data["tables"]:
        assert (out / f"{table}.parquet").exists() and (out / f"{table}.csv").exists()
    blob = "\n".join(p.read_text() for p in out.glob("*.csv"))
    for f in (FHIR / "bundles").glob("*.json.gz"):
        for e in json.loads(gzip.decompress(f.read_bytes()))["entry"]:
            r = e["resource"]
            if r["resourceType"] != "Patient":
                continue
            secrets = [
                r["name"][0]["family"],
                r["birthDate"],
                r["address"][0]["line"][0],
                r["telecom"][0]["value"],
            ]
            secrets += [i["value"] for i in r["identifier"] if "ssn" in i.get("system", "")]
            for s in secrets:
                assert s not in blob, "identifier leaked into the de-identified export"


def test_missing_path_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["records", "import", str(tmp_path / "nope"), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 1 and "nope" in err and "no such file" in err
