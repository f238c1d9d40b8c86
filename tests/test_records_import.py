"""FHIR import into real DuckDB files: counts against a direct count of the fixture files."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from workbench.cohort.importer import import_paths, sniff
from workbench.cohort.specs import SPECS_BY_TYPE, compile_path, table_columns
from workbench.cohort.store import MIGRATIONS, RECORD_TABLES, applied_migrations, ensure_schema
from workbench.workspace import open_workspace

FHIR = Path(__file__).parent / "fixtures" / "fhir"


def _bundle_resources(folder: Path) -> list[dict]:
    out: list[dict] = []
    for f in sorted(folder.glob("*.json.gz")):
        doc = json.loads(gzip.decompress(f.read_bytes()))
        out.extend(e["resource"] for e in doc["entry"])
    return out


def _ndjson_resources(folder: Path) -> list[dict]:
    out: list[dict] = []
    for f in sorted(folder.glob("*.ndjson.gz")):
        for line in gzip.open(f):
            r = json.loads(line)
            if "resourceType" in r:
                out.append(r)
    return out


def _expected_rows(resources: list[dict]) -> Counter[str]:
    rows: Counter[str] = Counter()
    for r in resources:
        spec = SPECS_BY_TYPE.get(r["resourceType"])
        if spec is None:
            continue
        n = len(r.get("component") or []) if r["resourceType"] == "Observation" else 0
        rows[spec.table] += max(n, 1)
    return rows


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_PASSPHRASE", "correct horse battery staple")


@pytest.fixture
def ws(tmp_path: Path):
    return open_workspace(tmp_path / "ws")


def _check_counts(ws, result, resources: list[dict]) -> None:
    direct = Counter(r["resourceType"] for r in resources)
    known = {t: n for t, n in direct.items() if t in SPECS_BY_TYPE}
    unknown = {t: n for t, n in direct.items() if t not in SPECS_BY_TYPE}
    assert dict(result.resources) == known
    assert dict(result.unknown_types) == unknown
    assert not result.errors
    con = ws.connect()
    try:
        stored = dict(
            con.execute(
                "SELECT resource_type, count(*) FROM resource_keys WHERE \"table\" <> 'measurements' GROUP BY 1"
            ).fetchall()
        )
        assert stored == known
        expected_rows = _expected_rows(resources)
        for table, n in expected_rows.items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n, table
        log = con.execute("SELECT unknown_types FROM import_log WHERE status = 'ok'").fetchall()
        logged: Counter[str] = Counter()
        for (u,) in log:
            logged.update(json.loads(u))
        assert dict(logged) == unknown
    finally:
        con.close()


def test_bundles_counts_match_direct_count(ws) -> None:
    result = import_paths(ws, [FHIR / "bundles"])
    resources = _bundle_resources(FHIR / "bundles")
    _check_counts(ws, result, resources)
    assert result.patients == 4
    con = ws.connect()
    try:
        # urn:uuid references resolve to the Patient id of each bundle
        pids = {r[0] for r in con.execute("SELECT patient_id FROM patients").fetchall()}
        obs_pids = {r[0] for r in con.execute("SELECT DISTINCT patient_id FROM observations").fetchall()}
        assert obs_pids <= pids and len(pids) == 4
        # encounter references resolve to encounter ids
        orphan = con.execute(
            "SELECT count(*) FROM observations o WHERE encounter_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM encounters e WHERE e.encounter_id = o.encounter_id)"
        ).fetchone()[0]
        assert orphan == 0
        # provenance on every row
        for table in RECORD_TABLES:
            bad = con.execute(
                f"SELECT count(*) FROM {table} WHERE patient_id IS NULL OR resource_id IS NULL "
                "OR source_file IS NULL OR source_id IS NULL OR import_id IS NULL"
            ).fetchone()[0]
            assert bad == 0, table
    finally:
        con.close()


def test_blood_pressure_gives_one_row_per_component(ws) -> None:
    import_paths(ws, [FHIR / "bundles"])
    con = ws.connect()
    try:
        rows = con.execute(
            "SELECT resource_id, component, value_num, unit FROM observations WHERE code = '55284-4' "
            "ORDER BY resource_id, component"
        ).fetchall()
        assert rows, "fixtures hold blood pressure panels"
        by_res: dict[str, set[str]] = {}
        for rid, comp, val, unit in rows:
            by_res.setdefault(rid, set()).add(comp)
            assert val is not None and unit == "mm[Hg]"
        assert all(c == {"8480-6", "8462-4"} for c in by_res.values())
        # vitals are also measurements under shared names, in canonical units
        m = dict(
            con.execute(
                "SELECT measure, count(*) FROM measurements WHERE source = 'fhir' GROUP BY 1"
            ).fetchall()
        )
        assert m["blood_pressure_systolic"] == m["blood_pressure_diastolic"] == len(by_res)
        w = con.execute(
            "SELECT m.value, o.value_num, m.unit FROM measurements m JOIN observations o "
            "ON o.resource_id = m.resource_id WHERE m.measure = 'weight' LIMIT 1"
        ).fetchone()
        assert w[0] == pytest.approx(w[1]) and w[2] == "kg"
    finally:
        con.close()


def test_ndjson_counts_and_patient_references(ws) -> None:
    result = import_paths(ws, [FHIR / "ndjson"])
    _check_counts(ws, result, _ndjson_resources(FHIR / "ndjson"))
    kinds = {Path(f.file).name: (f.kind, f.status) for f in result.files}
    assert kinds["log.ndjson.gz"] == ("skipped", "skipped")
    assert kinds["Patient.000.ndjson.gz"] == ("fhir_ndjson", "ok")
    con = ws.connect()
    try:
        pids = {r[0] for r in con.execute("SELECT patient_id FROM patients").fetchall()}
        enc = {r[0] for r in con.execute("SELECT DISTINCT patient_id FROM encounters").fetchall()}
        assert enc <= pids  # "Patient/<id>" resolves to the bare id
        texts = con.execute("SELECT text, content_type FROM documents").fetchall()
        assert texts and all(t and "\n" in t for t, _ in texts)  # base64 notes decoded
        assert all(ct.startswith("text/plain") for _, ct in texts)
    finally:
        con.close()


def test_reimport_adds_nothing(ws, tmp_path: Path) -> None:
    first = import_paths(ws, [FHIR / "bundles", FHIR / "ndjson"])
    con = ws.connect()
    before = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RECORD_TABLES}
    con.close()
    again = import_paths(ws, [FHIR / "bundles", FHIR / "ndjson"])
    assert sum(again.rows.values()) == 0
    assert {f.status for f in again.files} <= {"already_imported", "skipped"}
    # same resources in a file with other bytes (re-compressed): caught by resource keys
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in (FHIR / "bundles").glob("*.json.gz"):
        (copy / f.name.replace(".gz", "")).write_bytes(gzip.decompress(f.read_bytes()))
    third = import_paths(ws, [copy])
    assert sum(third.rows.values()) == 0
    bundle_known = sum(1 for r in _bundle_resources(FHIR / "bundles") if r["resourceType"] in SPECS_BY_TYPE)
    assert third.duplicates >= bundle_known and not third.resources
    assert first.patients == 6
    con = ws.connect()
    after = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RECORD_TABLES}
    con.close()
    assert after == before


def test_migrations_recorded_once(ws) -> None:
    con = ws.connect()
    try:
        assert ensure_schema(con) == [name for name, _ in MIGRATIONS]
        assert ensure_schema(con) == []
        assert applied_migrations(con) == [name for name, _ in MIGRATIONS]
    finally:
        con.close()


def test_specs_columns_exist_in_store(ws) -> None:
    con = ws.connect()
    try:
        ensure_schema(con)
        for table, cols in table_columns().items():
            stored = {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            for name, typ in cols:
                assert name in stored, (table, name)
                assert stored[name] == typ, (table, name, stored[name], typ)
    finally:
        con.close()


def test_path_language() -> None:
    r = {
        "code": {"coding": [{"system": "x", "code": "1"}, {"system": "http://loinc.org", "code": "2"}]},
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "m1"}, {"value": "v2"}],
        "effectivePeriod": {"start": "2020"},
    }
    assert compile_path("code.coding[system=http://loinc.org].code")(r) == ["2"]
    assert compile_path("code.coding[0].code")(r) == ["1"]
    assert compile_path("identifier[type.coding.code=MR].value")(r) == ["m1"]
    assert compile_path("effectiveDateTime|effectivePeriod.start")(r) == ["2020"]
    assert compile_path("nothing.here")(r) == []


def test_sniff_by_content(tmp_path: Path) -> None:
    b = next((FHIR / "bundles").glob("*.json.gz"))
    assert sniff(b) == "fhir_bundle"
    odd = tmp_path / "bundle.txt"  # the name does not matter, the content does
    odd.write_bytes(gzip.decompress(b.read_bytes()))
    assert sniff(odd) == "fhir_bundle"
    nd = tmp_path / "whatever.data"
    nd.write_bytes(gzip.decompress((FHIR / "ndjson" / "Patient.000.ndjson.gz").read_bytes()))
    assert sniff(nd) == "fhir_ndjson"
    (tmp_path / "readme.md").write_text("# hi\n")
    assert sniff(tmp_path / "readme.md") == "skipped"
    shutil.copy(FHIR / "PROVENANCE.md", tmp_path / "p.md")
    assert sniff(tmp_path / "p.md") == "skipped"


def test_first_value_matches_full_path() -> None:
    from workbench.cohort.specs import compile_first

    docs = [
        {"name": [{"given": ["A"]}, {"family": "F", "given": ["B", "C"]}]},
        {"name": [{"family": "G"}]},
        {"name": []},
        {"name": {"family": "H"}},
        {},
    ]
    for path in ("name.family", "name.given", "name[0].given", "x|name.family", "name[family=F].given"):
        full, first = compile_path(path), compile_first(path)
        for d in docs:
            vals = full(d)
            assert first(d) == (vals[0] if vals else None), (path, d)


def test_parallel_workers_store_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.cohort import importer

    def snapshot(ws) -> dict[str, list[tuple]]:
        con = ws.connect()
        try:
            out = {}
            for table in RECORD_TABLES:
                cols = [
                    r[0]
                    for r in con.execute(f"DESCRIBE {table}").fetchall()
                    if r[0] not in ("import_id", "source_id")
                ]
                sel = ", ".join(f'"{c}"' for c in cols)
                out[table] = con.execute(f"SELECT {sel} FROM {table} ORDER BY ALL").fetchall()
            return out
        finally:
            con.close()

    serial = open_workspace(tmp_path / "serial")
    r1 = import_paths(serial, [FHIR / "bundles"], workers=1)
    expected = snapshot(serial)
    # workers alone (Arrow chunks from other processes), then the writer parsing while it waits
    for only_workers, workers, txn_rows in ((True, 2, 1), (True, 3, 20_000), (False, 2, 1)):
        monkeypatch.setattr(importer, "PARSE_WHILE_WAITING", not only_workers)
        parallel = open_workspace(tmp_path / f"parallel-{only_workers}-{workers}")
        r2 = import_paths(parallel, [FHIR / "bundles"], workers=workers, txn_rows=txn_rows)
        assert r1.resources == r2.resources and r1.unknown_types == r2.unknown_types
        assert r1.rows == r2.rows and r1.patients == r2.patients
        assert snapshot(parallel) == expected


def test_other_resource_specs(ws, tmp_path: Path) -> None:
    """Coverage, MedicationStatement, DocumentReference, Claim/EOB totals and references by Patient/id."""
    import base64

    note = "Chief complaint: cough.\nPlan: rest."
    entries = [
        {"resourceType": "Patient", "id": "p1", "gender": "other", "birthDate": "1970"},
        {
            "resourceType": "Coverage",
            "id": "cov1",
            "status": "active",
            "type": {"text": "private"},
            "beneficiary": {"reference": "Patient/p1"},
            "payor": [{"display": "Acme Health"}],
            "period": {"start": "2020-01-01", "end": "2020-12-31"},
        },
        {
            "resourceType": "MedicationStatement",
            "id": "ms1",
            "status": "active",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]
            },
            "effectivePeriod": {"start": "2020-02-03T04:05:06-05:00"},
        },
        {
            "resourceType": "DocumentReference",
            "id": "doc1",
            "status": "current",
            "subject": {"reference": "http://example.org/fhir/Patient/p1"},
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "data": base64.b64encode(note.encode()).decode(),
                    }
                }
            ],
        },
        {
            "resourceType": "ExplanationOfBenefit",
            "id": "eob1",
            "status": "active",
            "patient": {"reference": "Patient/p1"},
            "claim": {"reference": "Claim/c1"},
            "total": [
                {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 5.0, "currency": "USD"}},
                {
                    "category": {"coding": [{"code": "submitted"}]},
                    "amount": {"value": 9.5, "currency": "USD"},
                },
            ],
            "payment": {"amount": {"value": 4.0}},
        },
    ]
    f = tmp_path / "misc.json"
    f.write_text(
        json.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in entries]}
        )
    )
    result = import_paths(ws, [f])
    assert not result.errors and result.resources["Coverage"] == 1
    con = ws.connect()
    try:
        assert con.execute(
            "SELECT patient_id, payor, type, CAST(period_start AS DATE)::VARCHAR FROM coverage"
        ).fetchall() == [("p1", "Acme Health", "private", "2020-01-01")]
        med = con.execute("SELECT kind, code, authored::VARCHAR FROM medications").fetchall()
        assert med == [("statement", "197361", "2020-02-03 09:05:06")]  # -05:00 stored as UTC
        assert con.execute("SELECT patient_id, text FROM documents").fetchall() == [("p1", note)]
        assert con.execute("SELECT claim_id, total, payment, currency FROM eobs").fetchall() == [
            ("c1", 9.5, 4.0, "USD")
        ]
        assert con.execute("SELECT birth_date::VARCHAR FROM patients").fetchall() == [("1970-01-01",)]
    finally:
        con.close()


def test_generated_flatteners_match_interpreted_specs() -> None:
    """The code generated from each spec gives the rows the column-by-column interpreter gives."""
    from workbench.cohort.specs import SpecValueError, compiled_specs, resolve_reference

    specs = compiled_specs()
    resources = _bundle_resources(FHIR / "bundles") + _ndjson_resources(FHIR / "ndjson")
    tricky = [  # several codings, components without values, odd value types, filters that miss
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": "a"}, {"system": "b", "code": "2", "display": "two"}]},
            "component": [
                {"code": {"coding": [{"code": "c1"}]}, "valueQuantity": {"value": 3, "unit": "mm"}},
                {"code": {"coding": [{"code": "c2"}]}, "valueString": "x"},
            ],
            "effectivePeriod": {"start": "2020-02"},
            "valueBoolean": True,
        },
        {"resourceType": "Patient", "id": "p1", "name": [{"given": ["A", "B"]}, {"use": "official"}]},
        {"resourceType": "Patient", "id": "p2", "name": {"family": "F"}, "deceasedBoolean": False},
    ]
    checked = 0
    for r in resources + tricky:
        spec = specs.get(r["resourceType"])
        if spec is None:
            continue
        assert spec.rows(r, None) == spec.rows_interpreted(r, None), r["resourceType"]
        ref = spec.patient_ref(r)
        expected_pid = resolve_reference(ref) if spec.spec.patient else r.get("id")
        assert spec.patient_id(r, None) == expected_pid
        spec.check_required(r)
        spec.check_required_interpreted(r)
        for path in spec.spec.required:  # each required field, taken away, fails both alike
            top = path.split(".")[0]
            partial = {k: v for k, v in r.items() if k != top}
            with pytest.raises(SpecValueError, match=f"required field '{path}' is missing"):
                spec.check_required(partial)
            with pytest.raises(SpecValueError, match=f"required field '{path}' is missing"):
                spec.check_required_interpreted(partial)
        checked += 1
    assert checked > 500
    bad = {"resourceType": "Observation", "id": "o2", "status": "final", "code": {}, "issued": "2020-13-40"}
    with pytest.raises(SpecValueError, match="column effective: impossible or malformed date"):
        specs["Observation"].rows(bad, None)
    with pytest.raises(SpecValueError, match="column effective: impossible or malformed date"):
        specs["Observation"].rows_interpreted(bad, None)


def test_arrow_batches_match_python_rows_and_survive_pickling(tmp_path: Path) -> None:
    """A worker's Arrow tables hold the values the single-process path inserts, and cross pickling intact."""
    import pickle

    import duckdb
    import pyarrow as pa

    from workbench.cohort import fhir_import as fi

    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    ensure_schema(con)
    schemas = fi.RecordsWriter(con).schemas()
    flattener = fi.Flattener()
    bundle = sorted((FHIR / "bundles").glob("*.json.gz"))[0]
    groups = fi.parse_bundle(bundle, fi.FileReport(file=str(bundle), kind="fhir_bundle"), flattener)
    assert groups
    for batch in groups.values():
        arrow = pickle.loads(pickle.dumps(fi.batch_to_arrow(batch, schemas)))
        assert arrow.keys == batch.keys and arrow.runs == batch.runs and arrow.n_rows == batch.n_rows
        assert set(arrow.tables) == {t for t, rows in batch.rows.items() if rows}
        for table, rows in batch.rows.items():
            tbl = arrow.tables[table]
            assert tbl.column_names == batch.names[table]
            assert tbl.schema.equals(pa.schema([schemas[table].field(n) for n in batch.names[table]]))
            got = [list(r.values()) for r in tbl.to_pylist()]
            assert got == rows
    con.close()


def test_parallel_import_counts_a_bundle_repeated_in_one_transaction_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files with the same resources, queued from workers into one transaction: stored once, one counted duplicate each."""
    folder = tmp_path / "in"
    folder.mkdir()
    src = sorted((FHIR / "bundles").glob("*.json.gz"))
    for p in src[:2]:
        shutil.copy(p, folder / p.name)
    # same content under another name: the sha256 matches, so both files are imported in this run
    shutil.copy(src[0], folder / f"zz_copy_{src[0].name}")
    serial = import_paths(open_workspace(tmp_path / "s"), [folder], workers=1)
    from workbench.cohort import importer

    monkeypatch.setattr(importer, "PARSE_WHILE_WAITING", False)  # every file through a worker (Arrow)
    ws = open_workspace(tmp_path / "p")
    parallel = import_paths(ws, [folder], workers=2)
    assert parallel.resources == serial.resources
    assert parallel.duplicates == serial.duplicates > 0
    assert parallel.rows == serial.rows
    con = ws.connect()
    try:
        n_keys = con.execute("SELECT count(*) FROM resource_keys").fetchone()
        n_distinct = con.execute(
            'SELECT count(DISTINCT ("table", resource_id)) FROM resource_keys'
        ).fetchone()
        assert n_keys == n_distinct
        for table, n in parallel.rows.items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (n,)
    finally:
        con.close()


def test_worker_chunk_job_matches_in_process_parse(tmp_path: Path) -> None:
    """The worker entry point (several bundles -> one Arrow chunk) gives each patient the rows parse_bundle gives."""
    import pickle

    import duckdb

    from workbench.cohort import fhir_import as fi

    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    ensure_schema(con)
    schemas = fi.RecordsWriter(con).schemas()
    con.close()
    files = sorted((FHIR / "bundles").glob("*.json.gz"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "entry": [')
    paths = [files[0], bad, *files[1:]]
    fi.init_bundle_worker(schemas)
    try:
        chunk = pickle.loads(
            pickle.dumps(fi.parse_bundles_job([(str(p), str(p), "fhir_bundle", False) for p in paths]))
        )
    finally:
        fi._WORKER_FLATTENER = fi._WORKER_SCHEMAS = None
        import gc

        gc.enable()
    flattener = fi.Flattener()
    assert len(chunk.files) == len(paths)
    for i, p in enumerate(paths):
        report, error, _ = chunk.files[i]
        if p == bad:
            assert error is not None and "not valid JSON" in str(error)
            assert chunk.patients(i) == {}
            continue
        assert error is None
        expected = fi.parse_bundle(p, fi.FileReport(file=str(p), kind="fhir_bundle"), flattener)
        got = chunk.patients(i)
        assert list(got) == list(expected)
        for pid, batch in expected.items():
            assert got[pid].keys == batch.keys
            for table, rows in batch.rows.items():
                assert [list(r.values()) for r in got[pid].tables[table].to_pylist()] == rows
