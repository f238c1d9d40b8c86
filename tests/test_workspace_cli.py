"""CLI: workspace init|status|rotate-key|retention, export; records import initialises a workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from test_workspace_support import bundles, phi_values

from workbench.cli import main
from workbench.cohort.importer import import_paths
from workbench.workspace import keyring, open_workspace
from workbench.workspace.store import utcnow


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    rc = main(list(argv))
    out = capsys.readouterr().out
    return rc, json.loads(out) if out.strip().startswith(("{", "[")) else out


def test_init_status_rotate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path / "ws")
    rc, info = _run(capsys, "workspace", "init", "--workspace", root, "--json")
    assert rc == 0 and isinstance(info, dict) and info["created"] is True
    rc, info = _run(capsys, "workspace", "status", "--workspace", root, "--json")
    assert rc == 0 and isinstance(info, dict)
    assert info["compartments"] == ["default"] and info["audit"]["ok"] and "salt" not in info["kdf"]
    monkeypatch.setenv("WB_NEW_PASSPHRASE", "a brand new passphrase")
    rc, out = _run(capsys, "workspace", "rotate-key", "--workspace", root, "--new-master", "--json")
    assert rc == 0 and out == {"rotated": True, "new_master": True}
    keyring.forget_cached_keys()
    assert main(["workspace", "status", "--workspace", root]) == 1  # old passphrase no longer opens it
    capsys.readouterr()
    monkeypatch.setenv("WB_PASSPHRASE", "a brand new passphrase")
    rc, info = _run(capsys, "workspace", "status", "--workspace", root, "--json")
    assert rc == 0 and isinstance(info, dict) and info["audit"]["ok"]
    actions = [e["action"] for e in open_workspace(root).trail.entries()]
    assert "key.rotate" in actions


def test_status_of_missing_workspace(tmp_path: Path) -> None:
    assert main(["workspace", "status", "--workspace", str(tmp_path / "nothing")]) == 1
    assert not (tmp_path / "nothing").exists()


def test_compartment_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path / "ws")
    assert main(["workspace", "init", "--workspace", root, "--compartment", "study-a"]) == 0
    capsys.readouterr()
    rc, info = _run(capsys, "workspace", "status", "--workspace", root, "--compartment", "study-a", "--json")
    assert isinstance(info, dict) and info["compartment"] == "study-a"


def test_retention(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = open_workspace(tmp_path / "ws")
    ws.memory.add("old conversation", created=utcnow() - timedelta(days=40))
    ws.memory.add("recent conversation")
    ws.close()
    root = str(tmp_path / "ws")
    rc, out = _run(capsys, "workspace", "retention", "--workspace", root, "--days", "30", "--apply", "--json")
    assert rc == 0 and isinstance(out, dict) and out["purged"]["memory"] == 1
    ws = open_workspace(tmp_path / "ws")
    ws.memory.add("stale again", created=utcnow() - timedelta(days=31))
    ws.close()
    ws = open_workspace(tmp_path / "ws")  # applied on open
    assert [e.text for e in ws.memory.entries()] == ["recent conversation"]


def test_export_fhir_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = open_workspace(tmp_path / "ws")
    ids = [f.source_id for f in import_paths(ws, bundles()).files]
    ws.consent.revoke(str(ids[2]), erase=False)  # not consented any more: not exported
    ws.close()
    out = tmp_path / "out"
    rc, report = _run(capsys, "export", "--workspace", str(tmp_path / "ws"), "--out", str(out), "--json")
    assert rc == 0 and isinstance(report, dict) and report["bundles"] == 2
    files = sorted((out / "fhir").glob("*.json"))
    assert len(files) == 2
    kinds: set[str] = set()
    for f in files:
        bundle = json.loads(f.read_text())
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
        kinds |= {e["resource"]["resourceType"] for e in bundle["entry"]}
        pat = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        assert pat["id"] == f.stem and pat["birthDate"]
        obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
        assert all(o["subject"]["reference"] == f"Patient/{pat['id']}" for o in obs)
        assert any("component" in o for o in obs)  # blood pressure keeps its components
    assert {"Patient", "Encounter", "Condition", "Observation", "Immunization", "Procedure"} <= kinds
    header = (out / "csv" / "patients.csv").read_text().splitlines()
    assert len(header) == 3 and "family" in header[0]
    assert phi_values(bundles()[2])["family"] not in (out / "csv" / "patients.csv").read_text()
    assert main(["export", "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "ws" / "x")]) == 1


def test_researcher_export_is_deidentified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = open_workspace(tmp_path / "ws")
    for f in import_paths(ws, bundles()).files:
        ws.consent.grant(str(f.source_id), purpose="research")
    ws.close()
    out = tmp_path / "out"
    argv = [
        "export",
        "--workspace",
        str(tmp_path / "ws"),
        "--role",
        "researcher",
        "--out",
        str(out),
        "--json",
    ]
    rc, report = _run(capsys, *argv)
    assert rc == 0
    text = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    for b in bundles():
        v = phi_values(b)
        assert v["family"] not in text and v["street"] not in text and v["phone"] not in text


def test_records_import_initialises_workspace(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    env = {**os.environ}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from workbench.cli import main; sys.exit(main())",
            "records",
            "import",
            "--workspace",
            str(root),
            str(bundles()[0]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-800:]
    assert keyring.exists(root)
    ws = open_workspace(root, create=False)
    assert ws.consent.list()[0]["purpose"] == "personal_care"
    assert ws.connect(read_only=True).execute("SELECT count(*) FROM patients").fetchone() == (1,)
