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
