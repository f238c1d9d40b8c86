"""Audit trail: hash chain + HMAC + signed head detect edits, deletions, reordering, truncation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_workspace_support import bundles, phi_values, scan

from workbench.cli import main
from workbench.errors import AuditTampered
from workbench.workspace import open_workspace
from workbench.workspace.audit import canonical


def _trail(tmp_path: Path, n: int = 6) -> Path:
    ws = open_workspace(tmp_path / "ws")
    for i in range(n):
        ws.audit("query.run", n=i, table="observations")
    ws.close()
    return tmp_path / "ws"


def _lines(root: Path) -> list[bytes]:
    return (root / "audit" / "log.jsonl").read_bytes().splitlines(keepends=True)


def _write(root: Path, lines: list[bytes]) -> None:
    (root / "audit" / "log.jsonl").write_bytes(b"".join(lines))


def _verify(root: Path) -> list[str]:
    return open_workspace(root).trail.verify().problems


def test_clean_trail_verifies(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    ws = open_workspace(root)
    report = ws.trail.verify()
    assert report.ok and report.entries == 8 and report.head_seq == 8  # init + compartment + 6
    entries = list(ws.trail.entries())
    assert [e["seq"] for e in entries] == list(range(1, 9))
    assert all(e["prev"] == p["hash"] for p, e in zip(entries, entries[1:]))


def test_edit_is_detected(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    lines = _lines(root)
    lines[3] = lines[3].replace(b'"n":1', b'"n":7')
    _write(root, lines)
    assert any("edited" in p for p in _verify(root))


def test_rehashed_edit_without_key_is_detected(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    lines = _lines(root)
    entry = json.loads(lines[-1])
    entry["meta"]["n"] = 99
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    entry["hash"] = hashlib.sha256(canonical(body)).hexdigest()  # attacker recomputes the hash
    lines[-1] = canonical(entry) + b"\n"
    _write(root, lines)
    problems = _verify(root)
    assert any("MAC invalid" in p for p in problems)


def test_deletion_is_detected(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    lines = _lines(root)
    del lines[4]
    _write(root, lines)
    assert any("sequence" in p or "link" in p for p in _verify(root))


def test_reordering_is_detected(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    lines = _lines(root)
    lines[2], lines[3] = lines[3], lines[2]
    _write(root, lines)
    assert _verify(root)


def test_truncation_is_detected(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    _write(root, _lines(root)[:-2])
    assert any("truncated" in p for p in _verify(root))


def test_missing_or_forged_head_is_detected(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    head = root / "audit" / "head.json"
    data = json.loads(head.read_text())
    data["seq"] = 3
    head.write_text(json.dumps(data))
    assert any("head anchor MAC" in p for p in _verify(root))
    head.unlink()
    assert any("head anchor is missing" in p for p in _verify(root))


def test_half_written_line_is_repaired_on_open(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    ws = open_workspace(root)
    with open(root / "audit" / "log.jsonl", "ab") as fh:
        fh.write(b'{"seq": 9, "ts": "2026')  # a crash in the middle of an append
    assert any("incomplete" in p for p in ws.trail.verify().problems)
    ws.close()
    ws = open_workspace(root)  # recovery trims the torn line; the head anchor covers the rest
    report = ws.trail.verify()
    assert report.ok and report.entries == 8
    ws.audit("after.crash")
    assert ws.trail.verify().ok


def test_verify_or_raise(tmp_path: Path) -> None:
    root = _trail(tmp_path)
    _write(root, _lines(root)[:-1])
    with pytest.raises(AuditTampered):
        open_workspace(root).trail.verify_or_raise()


def test_scrub_keeps_phi_out(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    entry = ws.trail.append(
        "answer",
        question="Does Qwertyname Zyx have diabetes?",
        text="note text",
        source_file="/data/Liz_Conn_27c9.json.gz",
        family="Zyx",
        rows=3,
        long="x" * 500,
    )
    raw = json.dumps(entry)
    for needle in ("Qwertyname", "note text", "Liz_Conn", "Zyx", "x" * 200):
        assert needle not in raw
    assert entry["meta"]["rows"] == 3
    assert entry["meta"]["question"].startswith("hmac:")


def test_import_leaves_no_phi_in_the_trail(tmp_path: Path) -> None:
    from workbench.cohort.importer import import_paths

    ws = open_workspace(tmp_path / "ws")
    import_paths(ws, bundles())
    ws.connect(read_only=True).execute("SELECT count(*) FROM patients").fetchall()
    ws.close()
    needles = [v for b in bundles() for k, v in phi_values(b).items() if k != "patient_id"]
    needles += [b.name.split("_")[0] + "_" + b.name.split("_")[1] for b in bundles()]
    audit_dir = tmp_path / "ws" / "audit"
    # The trail is plaintext JSON: the scan looks for every name, street, phone and birth date.
    assert scan([audit_dir], needles) == []
    assert (audit_dir / "log.jsonl").stat().st_size > 0


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _trail(tmp_path)
    assert main(["audit", "verify", "--workspace", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["audit", "show", "--workspace", str(root), "--json", "--limit", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    lines = _lines(root)
    lines[1] = lines[1].replace(b"compartment.create", b"compartment.delete")
    _write(root, lines)
    assert main(["audit", "verify", "--workspace", str(root), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["problems"]
