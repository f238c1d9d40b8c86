"""Consent ledger: grants at import, purposes, scopes, expiry, revocation; enforced by the read views."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_workspace_support import bundles

from workbench.cli import main
from workbench.cohort.importer import import_paths
from workbench.errors import ConsentError
from workbench.workspace import open_workspace
from workbench.workspace.store import Workspace


def _imported(tmp_path: Path) -> tuple[Workspace, list[str]]:
    ws = open_workspace(tmp_path / "ws")
    result = import_paths(ws, bundles())
    ids = [f.source_id for f in result.files]
    assert all(ids) and len(set(ids)) == 3
    return ws, [str(i) for i in ids]


def _count(ws: Workspace, table: str) -> int:
    row = ws.connect(read_only=True).execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def test_import_records_a_personal_care_grant(tmp_path: Path) -> None:
    ws, ids = _imported(tmp_path)
    grants = ws.consent.list()
    assert {g["source_id"] for g in grants} == set(ids)
    assert all(g["purpose"] == "personal_care" and g["active"] and g["scope"] is None for g in grants)
    assert ws.active_sources("personal_care") == sorted(ids)
    assert ws.active_sources("research") == []
    assert _count(ws, "patients") == 3


def test_import_purpose_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_IMPORT_PURPOSE", "research")
    ws, ids = _imported(tmp_path)
    assert ws.active_sources("research") == sorted(ids)


def test_expired_grant_hides_rows(tmp_path: Path) -> None:
    ws, ids = _imported(tmp_path)
    past = datetime.now(UTC) - timedelta(minutes=1)
    ws.consent.grant(ids[0], purpose="personal_care", expires=past)  # supersedes the import grant
    assert ids[0] not in ws.active_sources()
    assert _count(ws, "patients") == 2
    base = ws.connect().execute("SELECT count(*) FROM patients").fetchone()
    assert base == (3,)  # still stored (importer view), but unusable
    with pytest.raises(ConsentError):
        ws.consent.require(ids[0], "personal_care")
    future = datetime.now(UTC) + timedelta(days=30)
    ws.consent.grant(ids[0], purpose="personal_care", expires=future)
    assert _count(ws, "patients") == 3


def test_scope_limits_resource_types(tmp_path: Path) -> None:
    ws, ids = _imported(tmp_path)
    ws.consent.grant(ids[1], purpose="personal_care", scope=["Observation"])
    con = ws.connect(read_only=True)
    pats = {r[0] for r in con.execute("SELECT source_id FROM patients").fetchall()}
    obs = {r[0] for r in con.execute("SELECT DISTINCT source_id FROM observations").fetchall()}
    assert ids[1] not in pats and ids[1] in obs
    assert ids[1] in ws.active_sources(resource_type="Observation")
    assert ids[1] not in ws.active_sources(resource_type="Patient")


def test_purpose_filter(tmp_path: Path) -> None:
    ws, ids = _imported(tmp_path)
    ws.consent.grant(ids[2], purpose="research")
    con = ws.connect(read_only=True, purpose="research")
    assert {r[0] for r in con.execute("SELECT source_id FROM patients").fetchall()} == {ids[2]}


def test_unknown_source_and_purpose(tmp_path: Path) -> None:
    ws, ids = _imported(tmp_path)
    with pytest.raises(ConsentError):
        ws.consent.grant("src-doesnotexist", purpose="research")
    with pytest.raises(ConsentError):
        ws.consent.grant(ids[0], purpose="marketing")


def test_revoke_without_erasure_hides(tmp_path: Path) -> None:
    ws, ids = _imported(tmp_path)
    ws.consent.revoke(ids[0], erase=False)
    assert _count(ws, "patients") == 2
    assert ids[0] not in ws.active_sources()


def test_memory_and_cache_follow_consent(tmp_path: Path) -> None:
    ws, ids = _imported(tmp_path)
    ws.memory.add("answer about the first record", source_ids=[ids[0]], kind="answer")
    ws.memory.add("answer about the second", source_ids=[ids[1]], kind="answer")
    ws.consent.revoke(ids[0], erase=False)
    assert [e.source_ids for e in ws.memory.entries()] == [[ids[1]]]


def test_cli_grant_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws, ids = _imported(tmp_path)
    ws.close()
    root = str(tmp_path / "ws")
    assert main(["consent", "list", "--workspace", root, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert (
        main(
            [
                "consent",
                "grant",
                ids[0],
                "--workspace",
                root,
                "--purpose",
                "research",
                "--scope",
                "Observation,Condition",
                "--expires",
                "2099-01-01",
                "--json",
            ]
        )
        == 0
    )
    grant = json.loads(capsys.readouterr().out)
    assert grant["purpose"] == "research" and grant["scope"] == ["Condition", "Observation"]
    assert main(["consent", "revoke", ids[0], "--workspace", root, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["erased"] and report["verified"]
    assert main(["consent", "list", "--workspace", root, "--active", "--json"]) == 0
    active = json.loads(capsys.readouterr().out)
    assert ids[0] not in {g["source_id"] for g in active}
    assert main(["consent", "grant", "src-nope", "--workspace", root]) == 1
