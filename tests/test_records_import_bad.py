"""Bad FHIR input: each case names the file and resource, stores the rest, and half-writes nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from workbench.cohort.importer import import_paths
from workbench.errors import RecordFormatError
from workbench.workspace import open_workspace

FHIR = Path(__file__).parent / "fixtures" / "fhir"


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_PASSPHRASE", "correct horse battery staple")


@pytest.fixture
def ws(tmp_path: Path):
    return open_workspace(tmp_path / "ws")


def _count(ws, sql: str) -> int:
    con = ws.connect()
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def _patient(pid: str, family: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": ["Ann"]}],
        "gender": "female",
    }


def _obs(oid: str, pid: str | None, when: str = "2020-01-02T03:04:05Z") -> dict:
    r = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "effectiveDateTime": when,
        "valueQuantity": {"value": 70, "unit": "kg", "code": "kg"},
    }
    if pid:
        r["subject"] = {"reference": f"urn:uuid:{pid}"}
    return r


def _bundle(*resources: dict, type_: str = "collection") -> dict:
    return {
        "resourceType": "Bundle",
        "type": type_,
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def test_impossible_date_rolls_back_only_that_patient(ws, tmp_path: Path) -> None:
    f = tmp_path / "two.json"
    doc = _bundle(
        _patient("pa", "Quuxley"),
        _obs("o1", "pa"),
        _obs("o2", "pa", when="2019-02-30T10:00:00Z"),
        _patient("pb", "Zedd"),
        _obs("o3", "pb"),
    )
    f.write_text(json.dumps(doc))
    result = import_paths(ws, [f])
    assert result.files[0].status == "partial"
    (err,) = result.errors
    assert "two.json" in err["message"] and "Observation/o2" in err["message"] and "date" in err["message"]
    assert "Quuxley" not in err["message"]  # no PHI in errors
    assert _count(ws, "SELECT count(*) FROM patients") == 1
    assert _count(ws, "SELECT count(*) FROM observations WHERE patient_id = 'pa'") == 0  # all or nothing
    assert _count(ws, "SELECT count(*) FROM observations WHERE patient_id = 'pb'") == 1
    with pytest.raises(RecordFormatError, match="Observation/o2"):
        import_paths(ws, [f], strict=True)


def test_missing_subject(ws, tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(_bundle(_patient("pa", "X"), _obs("o1", "pa"), _obs("o2", None))))
    result = import_paths(ws, [one])
    assert "Observation/o2" in result.errors[0]["message"] and "subject" in result.errors[0]["message"]
    # a single-patient bundle: the orphan is charged to its patient, who is rolled back
    assert result.files[0].status == "failed"
    assert _count(ws, "SELECT count(*) FROM observations") == 0
    two = tmp_path / "two.json"
    two.write_text(
        json.dumps(_bundle(_patient("pb", "Y"), _obs("o3", "pb"), _patient("pc", "Z"), _obs("o4", None)))
    )
    result = import_paths(ws, [two])
    # several patients: only the orphan is skipped
    assert result.files[0].status == "partial"
    assert _count(ws, "SELECT count(*) FROM patients") == 2
    assert _count(ws, "SELECT count(*) FROM observations") == 1


def test_malformed_json_wrong_type_truncated_gzip(ws, tmp_path: Path) -> None:
    good = next((FHIR / "bundles").glob("*.json.gz"))
    d = tmp_path / "in"
    d.mkdir()
    (d / "a_broken.json").write_text('{"resourceType": "Bundle", "entry": [{"resource": ')
    (d / "b_wrong.json").write_text(json.dumps({"resourceType": "Bundel", "entry": []}))
    (d / "c_cut.json.gz").write_bytes(good.read_bytes()[:5000])
    (d / "d_good.json.gz").write_bytes(good.read_bytes())
    (d / "e_notype.json").write_text(json.dumps({"entry": []}))
    result = import_paths(ws, [d])
    status = {Path(f.file).name: f.status for f in result.files}
    assert status == {
        "a_broken.json": "failed",
        "b_wrong.json": "failed",
        "c_cut.json.gz": "failed",
        "d_good.json.gz": "ok",
        "e_notype.json": "skipped",
    }
    msgs = {Path(e["file"]).name: e["message"] for e in result.errors}
    assert "not valid JSON" in msgs["a_broken.json"]
    assert "Bundel" in msgs["b_wrong.json"]
    assert "truncated" in msgs["c_cut.json.gz"]
    assert _count(ws, "SELECT count(*) FROM patients") == 1  # the good bundle is in
    con = ws.connect()
    logged = dict(con.execute("SELECT source_file, status FROM import_log").fetchall())
    con.close()
    assert logged[str(d / "c_cut.json.gz")] == "failed"
    with pytest.raises(RecordFormatError, match="truncated"):
        import_paths(ws, [d / "c_cut.json.gz"], strict=True)


def _ndjson(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


def test_ndjson_bad_lines_are_skipped_and_reported(ws, tmp_path: Path) -> None:
    d = tmp_path / "bulk"
    d.mkdir()
    obs = [_obs(f"o{i}", "p1") for i in range(5)]
    for o in obs:
        o["subject"] = {"reference": "Patient/p1"}
    lines = [json.dumps(o) for o in obs]
    lines.insert(1, "{not json")
    lines.insert(3, json.dumps(_patient("p9", "Wrong")))  # wrong resourceType for this file
    bad_date = _obs("o_bad", None, when="2021-13-01")
    bad_date["subject"] = {"reference": "Patient/p1"}
    lines.append(json.dumps(bad_date))
    lines.append(json.dumps(_obs("o_orphan", None)))
    _ndjson(d / "Observation.000.ndjson.gz", lines)
    result = import_paths(ws, [d])
    assert result.files[0].status == "partial"
    msgs = [e["message"] for e in result.errors]
    assert len(msgs) == 4
    assert any("line 2" in m and "not valid JSON" in m for m in msgs)
    assert any("line 4" in m and "Patient/p9" in m for m in msgs)
    assert any("Observation/o_bad" in m and "date" in m for m in msgs)
    assert any("Observation/o_orphan" in m and "subject" in m for m in msgs)
    assert _count(ws, "SELECT count(*) FROM observations") == 5
    # a partial file may be imported again: it adds nothing
    again = import_paths(ws, [d])
    assert sum(again.rows.values()) == 0
    assert _count(ws, "SELECT count(*) FROM observations") == 5


def test_ndjson_truncated_gzip_rolls_back_the_file(
    ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.cohort import fhir_import

    monkeypatch.setattr(fhir_import, "NDJSON_CHUNK", 100)  # chunks are written before the cut
    import_paths(ws, [FHIR / "ndjson" / "Patient.000.ndjson.gz"])
    before = _count(ws, "SELECT count(*) FROM resource_keys")
    d = tmp_path / "bulk"
    d.mkdir()
    lines = []
    for i in range(3000):
        o = _obs(f"o{i}", None)
        o["subject"] = {"reference": "Patient/p1"}
        o["note"] = [{"text": f"{i:06d}" * 20}]
        lines.append(json.dumps(o))
    _ndjson(d / "Observation.000.ndjson.gz", lines)
    raw = (d / "Observation.000.ndjson.gz").read_bytes()
    (d / "Observation.000.ndjson.gz").write_bytes(raw[: len(raw) * 3 // 4])
    result = import_paths(ws, [d])
    assert result.files[0].status == "failed"
    assert (
        "truncated" in result.errors[0]["message"]
        and "Observation.000.ndjson.gz" in result.errors[0]["message"]
    )
    assert _count(ws, "SELECT count(*) FROM observations") == 0
    assert _count(ws, "SELECT count(*) FROM resource_keys") == before  # earlier import intact


def test_ndjson_repeated_resource_across_chunks(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.cohort import fhir_import

    monkeypatch.setattr(fhir_import, "NDJSON_CHUNK", 10)
    d = tmp_path / "bulk"
    d.mkdir()
    lines = []
    for i in range(30):
        o = _obs(f"o{i}", None)
        o["subject"] = {"reference": "Patient/p1"}
        lines.append(json.dumps(o))
    lines += [lines[0], lines[25], lines[25]]  # repeats in an earlier chunk and in the same chunk
    _ndjson(d / "Observation.000.ndjson.gz", lines)
    result = import_paths(ws, [d])
    assert not result.errors and result.duplicates == 3
    assert _count(ws, "SELECT count(*) FROM observations") == 30
    assert _count(ws, "SELECT count(DISTINCT resource_id) FROM observations") == 30


def _per_patient(ws) -> dict[str, dict[str, int]]:
    """Rows per table of every stored patient."""
    from workbench.cohort.store import RECORD_TABLES

    con = ws.connect()
    try:
        out: dict[str, dict[str, int]] = {}
        for table in RECORD_TABLES:
            for pid, n in con.execute(f"SELECT patient_id, count(*) FROM {table} GROUP BY 1").fetchall():
                out.setdefault(pid, {})[table] = n
        return out
    finally:
        con.close()


def test_failed_background_commit_keeps_whole_patients(
    ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing in the writer thread: the import raises, no patient is half-stored, nothing lost."""
    import duckdb

    from workbench.cohort import fhir_import

    clean = open_workspace(tmp_path / "clean")
    import_paths(clean, [FHIR / "bundles"], workers=1)
    expected = _per_patient(clean)
    assert len(expected) == 4

    real = fhir_import.RecordsWriter.write
    calls = {"n": 0}

    def flaky(self, txn):  # the second transaction (the second patient) hits a full disk
        calls["n"] += 1
        if calls["n"] == 2:
            raise duckdb.IOException("No space left on device (test)")
        return real(self, txn)

    monkeypatch.setattr(fhir_import.RecordsWriter, "write", flaky)
    with pytest.raises(duckdb.IOException):
        import_paths(ws, [FHIR / "bundles"], workers=1, txn_rows=1)  # one transaction per patient
    stored = _per_patient(ws)
    assert 0 < len(stored) < 4
    for pid, rows in stored.items():
        assert rows == expected[pid], pid  # every stored patient is complete
    con = ws.connect()
    try:
        logged = dict(con.execute("SELECT source_file, status FROM import_log").fetchall())
    finally:
        con.close()
    files = sorted(str(p) for p in (FHIR / "bundles").glob("*.json.gz"))
    assert logged[files[1]] == "failed"  # its patient was rolled back: not 'ok', so imported again
    assert logged[files[0]] == "ok"

    monkeypatch.setattr(fhir_import.RecordsWriter, "write", real)
    again = import_paths(ws, [FHIR / "bundles"], workers=1)
    assert not again.errors
    assert _per_patient(ws) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_files_among_good_ones_in_worker_chunks(tmp_path: Path, workers: int) -> None:
    """Worker jobs hold several files: a broken one fails alone, its chunk's good files and bad patients as serially."""
    good = sorted((FHIR / "bundles").glob("*.json.gz"))
    d = tmp_path / "in"
    d.mkdir()
    for p in good:
        (d / f"g_{p.name}").write_bytes(p.read_bytes())
    (d / "a_broken.json").write_text('{"resourceType": "Bundle", "entry": [{"resource": ')
    (d / "c_cut.json.gz").write_bytes(good[0].read_bytes()[:5000])
    (d / "h_bad_date.json").write_text(
        json.dumps(_bundle(_patient("p9", "Zed"), _obs("o9", "p9", when="2021-02-30T00:00:00Z")))
    )
    (d / "i_fine.json").write_text(json.dumps(_bundle(_patient("p8", "Yi"), _obs("o8", "p8"))))
    ws = open_workspace(tmp_path / f"ws{workers}")
    result = import_paths(ws, [d], workers=workers)
    status = {Path(f.file).name: f.status for f in result.files}
    assert status["a_broken.json"] == status["c_cut.json.gz"] == "failed"
    assert status["h_bad_date.json"] == "failed"  # its only patient was rolled back
    assert status["i_fine.json"] == "ok"
    assert all(status[f"g_{p.name}"] == "ok" for p in good)
    errors = {Path(e["file"]).name: e for e in result.errors}
    assert "not valid JSON" in errors["a_broken.json"]["message"]
    assert "truncated" in errors["c_cut.json.gz"]["message"]
    assert "o9" in errors["h_bad_date.json"]["message"]
    assert _count(ws, "SELECT count(*) FROM patients") == len(good) + 1
    assert _count(ws, "SELECT count(*) FROM patients WHERE resource_id = 'p9'") == 0
    assert _count(ws, "SELECT count(*) FROM observations WHERE resource_id = 'o8'") == 1
    # strict: the first bad file in file order stops the import, whichever worker read it
    with pytest.raises(RecordFormatError, match="a_broken.json: not valid JSON"):
        import_paths(open_workspace(tmp_path / f"strict{workers}"), [d], workers=workers, strict=True)
