"""``workbench cohort run|sql|patterns`` against a real (encrypted) workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.workspace import open_workspace

FIX = Path(__file__).parent / "fixtures" / "cohort"
TABLES = ("patients", "encounters", "conditions", "observations", "medications")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace holding the fixture records, consented as one imported source."""
    monkeypatch.setenv("WB_PASSPHRASE", "cohort-cli-test-passphrase")
    root = tmp_path / "ws"
    ws = open_workspace(root)
    source_id = ws.register_source(FIX / "records.sql", kind="fhir", sha256="ab" * 32, copy_file=False)
    con = ws.connect()
    existing = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not existing & set(TABLES):
        con.execute((FIX / "schema.sql").read_text())
    con.execute((FIX / "records.sql").read_text())
    for table in TABLES:
        con.execute(f"UPDATE {table} SET source_id = ?", [source_id])
    ws.close()
    return root


def test_cohort_run_text(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["cohort", "run", str(FIX / "definitions" / "diabetes_signals.json"), "--workspace", str(workspace)]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "all patients" in out and "N = 2" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [int(parts[1]) for parts in lines] == [6, 5, 3, 2]


def test_cohort_run_json_pseudonymises(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "cohort",
            "run",
            str(FIX / "definitions" / "diabetes_signals.json"),
            "--workspace",
            str(workspace),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    data = json.loads(captured.out)
    assert [a["n"] for a in data["attrition"]] == [6, 5, 3, 2]
    assert data["attrition"][0]["criterion"] == "all patients"
    assert data["n"] == 2 and len(data["patients"]) == 2
    assert data["pseudonymised"] is True
    assert all(p.startswith("P-") for p in data["patients"])
    for raw in ("p1", "p3", "Testperson", "Ann"):
        assert f'"{raw}"' not in captured.out
    # stable across runs
    main(
        [
            "cohort",
            "run",
            str(FIX / "definitions" / "diabetes_signals.json"),
            "--workspace",
            str(workspace),
            "--json",
        ]
    )
    assert json.loads(capsys.readouterr().out)["patients"] == data["patients"]


def test_cohort_run_invalid_definition(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"schema_version": 1, "name": "x", "criteria": [{"type": "lab", "codes": ["1"]}]})
    )
    rc = main(["cohort", "run", str(bad), "--workspace", str(workspace)])
    err = capsys.readouterr().err
    assert rc == 1 and "bad.json" in err and "criteria[0]" in err


def test_cohort_sql(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "cohort",
            "sql",
            "SELECT gender, count(*) AS n FROM patients GROUP BY gender ORDER BY gender",
            "--workspace",
            str(workspace),
            "--json",
        ]
    )
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"] == [{"gender": "female", "n": 3}, {"gender": "male", "n": 3}]
    rc = main(["cohort", "sql", "DELETE FROM patients", "--workspace", str(workspace)])
    assert rc == 1 and "only SELECT" in capsys.readouterr().err
    main(["cohort", "sql", "SELECT count(*) AS n FROM patients", "--workspace", str(workspace)])
    assert capsys.readouterr().out.split() == ["n", "6"]


def test_cohort_patterns(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["cohort", "patterns", "--workspace", str(workspace), "--json"])
    assert rc == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert len(data["findings"]) == 8 and "not a diagnosis" in data["statement"]
    assert {f["pattern_id"] for f in data["findings"]} >= {"diabetes", "ckd", "hypertension"}
    assert all(f["patient_id"].startswith("P-") for f in data["findings"])
    assert all(r.startswith("R-") for f in data["findings"] for r in f["record_ids"])
    assert '"o201"' not in out and '"p2"' not in out
