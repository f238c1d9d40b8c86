"""Encrypted workspace: keys, passphrases, compartments, file modes, source copies, roles."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import duckdb
import pytest

from workbench.errors import AccessDenied, WorkspaceError, WrongPassphrase
from workbench.workspace import keyring, open_workspace
from workbench.workspace.store import Workspace

SECRET_NAME = "Qwertyname Zyxplaintext"


def _source(tmp_path: Path, name: str = "bundle.json", text: str = SECRET_NAME) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_text(json.dumps({"resourceType": "Patient", "name": text}))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _add_rows(ws: Workspace, source_id: str, family: str = "Zyxplaintext") -> None:
    con = ws.connect()
    con.execute(
        "CREATE TABLE IF NOT EXISTS patients (patient_id VARCHAR, resource_id VARCHAR, source_file VARCHAR, "
        "source_id VARCHAR, import_id VARCHAR, family VARCHAR, given VARCHAR, birth_date DATE)"
    )
    con.execute(
        "INSERT INTO patients VALUES ('p-' || ?, 'p-' || ?, 'f.json', ?, 'imp', ?, 'Qwertyname', DATE '1961-07-13')",
        [source_id, source_id, source_id, family],
    )


def _all_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def test_database_files_and_copies_are_encrypted(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    src, sha = _source(tmp_path)
    sid = ws.register_source(src, kind="fhir", sha256=sha)
    _add_rows(ws, sid)
    ws.connect().execute("CHECKPOINT")
    assert ws.read_source_file(sid) == src.read_bytes()
    ws.close()
    blobs = _all_bytes(tmp_path / "ws")
    assert any(p.suffix == ".duckdb" and len(b) > 0 for p, b in blobs)
    assert any(p.name == f"{sid}.bin" for p, _ in blobs)
    for path, data in blobs:
        for needle in (b"Zyxplaintext", b"Qwertyname", b"1961-07-13", b"bundle.json"):
            assert needle not in data, f"{needle!r} in plaintext in {path}"
    # The records file really is DuckDB-encrypted: opening it without the key fails.
    db = next(p for p, _ in blobs if p.suffix == ".duckdb")
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(db)).execute("SELECT * FROM patients").fetchall()


def test_wal_is_encrypted(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    src, sha = _source(tmp_path)
    _add_rows(ws, ws.register_source(src, kind="fhir", sha256=sha))
    wal = ws.db_path.with_name(ws.db_path.name + ".wal")
    assert wal.exists() and wal.stat().st_size > 0  # rows not yet checkpointed live in the WAL
    data = wal.read_bytes()
    assert b"Zyxplaintext" not in data and b"Qwertyname" not in data


def test_modes_are_private(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    src, sha = _source(tmp_path)
    _add_rows(ws, ws.register_source(src, kind="fhir", sha256=sha))
    ws.close()
    for p in (tmp_path / "ws").rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        if p.is_dir():
            assert mode == 0o700, p
        else:
            assert mode & 0o077 == 0, f"{p} is {oct(mode)}"


def test_wrong_passphrase_touches_nothing(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    ws.audit("x")
    ws.close()
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "ws").rglob("*") if p.is_file()}
    keyring.forget_cached_keys()
    with pytest.raises(WrongPassphrase):
        open_workspace(tmp_path / "ws", passphrase="not the passphrase")
    with pytest.raises(WrongPassphrase):
        open_workspace(tmp_path / "ws", passphrase="not the passphrase", compartment="other")
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "ws").rglob("*") if p.is_file()}
    assert before == after


def test_missing_passphrase_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WB_PASSPHRASE")
    with pytest.raises(WorkspaceError, match="WB_PASSPHRASE"):
        open_workspace(tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_master_key_cached_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_workspace(tmp_path / "ws").close()
    monkeypatch.delenv("WB_PASSPHRASE")
    # Same process, no passphrase: the cached master key opens it; a fresh process could not.
    open_workspace(tmp_path / "ws").close()
    keyring.forget_cached_keys()
    with pytest.raises(WorkspaceError, match="locked"):
        open_workspace(tmp_path / "ws")


def test_rotate_key(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    src, sha = _source(tmp_path)
    sid = ws.register_source(src, kind="fhir", sha256=sha)
    _add_rows(ws, sid)
    ws.close()
    keyring.rotate_passphrase(tmp_path / "ws", "test passphrase", "new one", new_master=True)
    keyring.forget_cached_keys()
    with pytest.raises(WrongPassphrase):
        open_workspace(tmp_path / "ws", passphrase="test passphrase")
    ws = open_workspace(tmp_path / "ws", passphrase="new one")
    assert ws.connect(read_only=True).execute("SELECT family FROM patients").fetchall() == [("Zyxplaintext",)]
    assert ws.read_source_file(sid) == src.read_bytes()
    assert ws.trail.verify().ok


def test_compartments_never_cross(tmp_path: Path) -> None:
    a = open_workspace(tmp_path / "ws", compartment="study-a")
    b = open_workspace(tmp_path / "ws", compartment="person-b")
    src, sha = _source(tmp_path)
    sid = a.register_source(src, kind="fhir", sha256=sha)
    _add_rows(a, sid)
    a.memory.add("remember this", source_ids=[sid])
    assert a.db_path != b.db_path
    assert "patients" not in b.tables()
    assert len(b.memory) == 0 and len(a.memory) == 1
    assert b.active_sources() == []
    assert a.secret("deid") != b.secret("deid") and a.secret("deid") == a.secret("deid")
    data = keyring.load(tmp_path / "ws")["compartments"]
    assert data["study-a"]["key"] != data["person-b"]["key"]
    with pytest.raises(WorkspaceError):
        open_workspace(tmp_path / "ws", compartment="nope", create=False)
    with pytest.raises(WorkspaceError):
        open_workspace(tmp_path / "ws", compartment="../escape")


def test_roles(tmp_path: Path) -> None:
    owner = open_workspace(tmp_path / "ws")
    p1, s1 = _source(tmp_path, "a.json", "one")
    p2, s2 = _source(tmp_path, "b.json", "two")
    care = owner.register_source(p1, kind="fhir", sha256=s1)
    research = owner.register_source(p2, kind="fhir", sha256=s2, purpose="research")
    _add_rows(owner, care, "Carefamily")
    _add_rows(owner, research, "Researchfamily")
    clin = open_workspace(tmp_path / "ws", role="clinician")
    rows = clin.connect(read_only=True).execute("SELECT family FROM patients").fetchall()
    assert rows == [("Carefamily",)]
    with pytest.raises(AccessDenied):
        clin.connect()
    with pytest.raises(AccessDenied):
        clin.connect(read_only=True, purpose="research")
    with pytest.raises(AccessDenied):
        clin.register_source(p1, kind="fhir", sha256=s1)
    res = open_workspace(tmp_path / "ws", role="researcher")
    con = res.connect(read_only=True)
    cols = [d[0] for d in con.execute("SELECT * FROM patients").description]
    assert "family" not in cols and "given" not in cols
    assert con.execute("SELECT count(*) FROM patients").fetchone() == (1,)
    with pytest.raises(AccessDenied):
        res.consent.revoke(care)
    with pytest.raises(WorkspaceError):
        open_workspace(tmp_path / "ws", role="admin")


def test_clinician_denied_without_personal_care_consent(tmp_path: Path) -> None:
    owner = open_workspace(tmp_path / "ws")
    p, s = _source(tmp_path)
    _add_rows(owner, owner.register_source(p, kind="fhir", sha256=s, purpose="research"))
    with pytest.raises(AccessDenied):
        open_workspace(tmp_path / "ws", role="clinician").connect(read_only=True)


def test_cache_roundtrip_and_consent_gate(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    p, s = _source(tmp_path)
    sid = ws.register_source(p, kind="fhir", sha256=s)
    ws.cache_put("answer:1", b"Qwertyname cached", source_ids=[sid])
    assert ws.cache_get("answer:1") == b"Qwertyname cached"
    assert all(b"Qwertyname" not in b for _, b in _all_bytes(ws.cache_dir))
    ws.consent.revoke(sid, erase=False)
    assert ws.cache_get("answer:1") is None
    assert os.listdir(ws.cache_dir)  # still there until erased, but unusable
