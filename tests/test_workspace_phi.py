"""Target: after importing Synthea bundles, no file under the workspace or temp folder holds PHI in plaintext."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest
from test_workspace_support import bundles, phi_values, scan

from workbench.cohort.importer import import_paths
from workbench.workspace import open_workspace


def _needles() -> list[str]:
    out = []
    for b in bundles():
        v = phi_values(b)
        out += [v["family"], v["given"], v["street"], v["phone"], v["birth_date"]]
        out.append(b.name.split("_")[0] + "_" + b.name.split("_")[1])  # file names carry names too
    # A 3-byte value turns up by chance in ~6% of 1 MB of ciphertext; 4+ bytes in ~0.02%.
    return [n for n in out if len(n) >= 4]


def test_no_plaintext_phi_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "systmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    ws = open_workspace(tmp_path / "ws")
    import_paths(ws, bundles())
    families = [phi_values(b)["family"] for b in bundles()]
    con = ws.connect(read_only=True)
    assert sorted(r[0] for r in con.execute("SELECT family FROM patients").fetchall()) == sorted(families)
    # Derived data that quotes PHI: memory, cached answers.
    sid = ws.active_sources()[0]
    ws.memory.add(f"{families[0]} asked about their labs", role="user", source_ids=[sid])
    ws.cache_put("answer:x", f"Answer for {families[0]}".encode(), source_ids=[sid])
    ws.connect().execute("CHECKPOINT")
    ws.close()
    hits = scan([tmp_path / "ws", tmp], _needles())
    assert hits == []
    assert any(p.suffix == ".duckdb" for p in (tmp_path / "ws").rglob("*"))


def test_spill_files_are_encrypted(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    import_paths(ws, bundles()[:1])
    family = phi_values(bundles()[0])["family"]
    con = ws.connect()
    con.execute("SET memory_limit = '24MB'")
    con.execute("SET preserve_insertion_order = false")
    seen: list[tuple[str, bool]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for p in ws.tmp_dir.glob("duckdb_temp*"):
                try:
                    data = p.read_bytes()
                except OSError:
                    continue
                if data:
                    seen.append((p.name, family.encode() in data))
            time.sleep(0.02)

    t = threading.Thread(target=watch)
    t.start()
    try:
        con.execute(
            "SELECT s, count(*) FROM (SELECT family || '-' || i::VARCHAR AS s FROM patients, range(1500000) r(i)) "
            "GROUP BY s ORDER BY s LIMIT 1"
        ).fetchall()
    finally:
        stop.set()
        t.join()
        con.execute("RESET memory_limit")
    assert seen, "the query did not spill; lower memory_limit"
    assert not any(hit for _, hit in seen)
