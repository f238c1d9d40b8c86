"""Erasure: revoking a source removes every row, vector, cache entry, memory and key derived from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_workspace_support import bundles, phi_values

from workbench.cli import main
from workbench.cohort.importer import import_paths
from workbench.errors import WorkspaceError
from workbench.workspace import erase_source, keyring, open_workspace, verify_erasure
from workbench.workspace.consent import source_tables
from workbench.workspace.store import Workspace


def _setup(tmp_path: Path) -> tuple[Workspace, list[str]]:
    ws = open_workspace(tmp_path / "ws")
    ids = [str(f.source_id) for f in import_paths(ws, bundles()).files]
    con = ws.connect()
    # A personal-document index: chunks with embeddings, each row naming its source.
    con.execute(
        "CREATE TABLE personal_chunks (chunk_id VARCHAR, doc_id VARCHAR, source_id VARCHAR, import_id VARCHAR, "
        "source_file VARCHAR, patient_id VARCHAR, resource_id VARCHAR, text VARCHAR, embedding FLOAT[])"
    )
    rng = np.random.default_rng(0)
    for sid in ids:
        for k in range(4):
            con.execute(
                "INSERT INTO personal_chunks VALUES (?, 'doc', ?, 'imp', 'f', 'p', 'r', 'chunk text', ?)",
                [f"{sid}-{k}", sid, rng.standard_normal(8).astype("float32").tolist()],
            )
    # Answers derived from several sources at once.
    con.execute("CREATE TABLE saved_answers (answer_id VARCHAR, text VARCHAR, source_ids VARCHAR[])")
    con.execute(
        "INSERT INTO saved_answers VALUES ('a1', 'uses 0 and 1', ?), ('a2', 'uses 2', ?)",
        [[ids[0], ids[1]], [ids[2]]],
    )
    ws.memory.add("question about record 0", role="user", source_ids=[ids[0]])
    ws.memory.add("answer citing 0 and 2", source_ids=[ids[0], ids[2]], kind="answer")
    ws.memory.add("answer citing 1", source_ids=[ids[1]], kind="answer")
    ws.memory.add("general note", source_ids=[], kind="note")
    ws.cache_put("ans:0", b"derived from 0", source_ids=[ids[0]])
    ws.cache_put("ans:1", b"derived from 1", source_ids=[ids[1]])
    return ws, ids


def _counts(ws: Workspace) -> dict[tuple[str, str], int]:
    con = ws.connect()
    out = {}
    for table, column in source_tables(con):
        if column != "source_id":
            continue
        for sid, n in con.execute(f'SELECT source_id, count(*) FROM "{table}" GROUP BY 1').fetchall():
            out[(table, sid)] = n
    return out


def test_revoke_erases_everything_derived(tmp_path: Path) -> None:
    ws, ids = _setup(tmp_path)
    gone = ids[0]
    before = _counts(ws)
    assert any(sid == gone for _, sid in before)
    old_db = ws.db_path
    assert (ws.files_dir / f"{gone}.bin").exists()
    report = ws.consent.revoke(gone)
    assert report["verified"] and report["remaining"] == {}
    assert report["rows_deleted"]["personal_chunks"] == 4
    assert report["rows_deleted"]["saved_answers"] == 1
    assert report["memory_deleted"] == 2 and report["cache_deleted"] == 1
    after = _counts(ws)
    assert not any(sid == gone for _, sid in after)
    # Nothing else was touched.
    assert after == {k: v for k, v in before.items() if k[1] != gone}
    con = ws.connect()
    assert con.execute("SELECT answer_id FROM saved_answers").fetchall() == [("a2",)]
    assert sorted(e.text for e in ws.memory.entries()) == ["answer citing 1", "general note"]
    assert ws.cache_get("ans:1") == b"derived from 1" and ws.cache_get("ans:0") is None
    assert len(list(ws.cache_dir.iterdir())) == 1
    # Crypto-shredding: the file copy and its key are gone; the database moved to a new key.
    assert not (ws.files_dir / f"{gone}.bin").exists()
    comp = keyring.load(ws.root)["compartments"]["default"]
    assert gone not in comp["sources"] and comp["pending_erasures"] == []
    assert ws.db_path != old_db and not old_db.exists()
    assert verify_erasure(ws, gone)["ok"]
    assert ws.trail.verify().ok
    actions = [e["action"] for e in ws.trail.entries()]
    assert "consent.revoke" in actions and "erasure.done" in actions
    # The erased patient is no longer anywhere in the records.
    name = phi_values(bundles()[0])["family"]
    assert con.execute("SELECT count(*) FROM patients WHERE family = ?", [name]).fetchone() == (0,)
    # Tombstone keeps the ledger but not the file name or hash.
    row = (
        ws._admin()
        .execute("SELECT status, name, sha256 FROM wb.sources WHERE source_id = ?", [gone])
        .fetchone()
    )
    assert row == ("erased", None, None)


def test_reimport_after_erasure(tmp_path: Path) -> None:
    ws, ids = _setup(tmp_path)
    erase_source(ws, ids[0])
    again = import_paths(ws, [bundles()[0]]).files[0]
    assert again.source_id == ids[0] and again.status == "ok"
    assert ids[0] in ws.active_sources()
    assert ws.read_source_file(ids[0]) == bundles()[0].read_bytes()


def test_verify_erasure_finds_leftovers(tmp_path: Path) -> None:
    ws, ids = _setup(tmp_path)
    erase_source(ws, ids[1])
    ws.connect().execute("INSERT INTO personal_chunks (chunk_id, source_id) VALUES ('x', ?)", [ids[1]])
    report = verify_erasure(ws, ids[1])
    assert not report["ok"] and report["remaining"] == {"personal_chunks": 1}
    ws.connect().execute("DELETE FROM personal_chunks WHERE chunk_id = 'x'")
    # A mention anywhere else (here free text holding the id) is found too.
    ws.connect().execute("INSERT INTO saved_answers VALUES ('a9', ?, [])", [f"derived from {ids[1]}"])
    assert verify_erasure(ws, ids[1])["remaining"] == {"saved_answers (mentions)": 1}


def test_unknown_source(tmp_path: Path) -> None:
    ws, _ = _setup(tmp_path)
    with pytest.raises(WorkspaceError):
        erase_source(ws, "src-0000000000000000")


def test_erase_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws, ids = _setup(tmp_path)
    ws.close()
    root = str(tmp_path / "ws")
    assert main(["erase", ids[2], "--workspace", root, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] and report["rows_deleted"]["patients"] == 1
    assert main(["audit", "verify", "--workspace", root]) == 0
