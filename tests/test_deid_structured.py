"""Pseudonyms, the workspace key, Safe Harbor tables and k-anonymity on a real DuckDB file."""

from __future__ import annotations

import os
import re
import stat
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from workbench.cohort.deid import (
    TABLE_RULES,
    age_band,
    deidentified_table,
    k_anonymity,
    pseudonym,
    restricted_zip3,
    workspace_key,
    zip3,
)
from workbench.cohort.deid.safe_harbor import MAX_SHIFT_DAYS, date_offset_days, rules_for
from workbench.errors import DeidError
from workbench.workspace import open_workspace

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AS_OF = date(2025, 6, 30)


# --- pseudonyms ---------------------------------------------------------------------------


def test_pseudonym_is_stable_and_readable() -> None:
    p = pseudonym(KEY, "f1a2-patient", "patient")
    assert p == pseudonym(KEY, "f1a2-patient", "patient")
    assert p.startswith("P-") and len(p) == 2 + 12
    int(p[2:], 16)


def test_pseudonym_normalises_per_kind() -> None:
    assert pseudonym(KEY, "  ABC-123 ", "patient") == pseudonym(KEY, "abc-123", "patient")
    # References name the same resource as the bare id.
    assert pseudonym(KEY, "Encounter/abc", "encounter") == pseudonym(KEY, "urn:uuid:abc", "encounter")
    assert pseudonym(KEY, "(555) 123-4567", "phone") == pseudonym(KEY, "+1 555.123.4567", "phone")
    assert pseudonym(KEY, "123-45-6789", "ssn") == pseudonym(KEY, "123 45 6789", "ssn")
    assert pseudonym(KEY, "123-45-6789", "ssn") != pseudonym(KEY, "123-45-6780", "ssn")


def test_pseudonym_depends_on_key_and_kind() -> None:
    assert pseudonym(KEY, "abc", "patient") != pseudonym(OTHER_KEY, "abc", "patient")
    assert pseudonym(KEY, "555", "phone")[3:] != pseudonym(KEY, "555", "ssn")[4:]
    # Record-id kinds share one domain so references across tables join.
    assert pseudonym(KEY, "abc", "encounter")[2:] == pseudonym(KEY, "abc", "resource")[2:]
    with pytest.raises(DeidError):
        pseudonym(KEY, "abc", "no-such-kind")
    with pytest.raises(DeidError):
        pseudonym(b"short", "abc", "patient")


def test_file_key_for_a_plain_folder_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    key = workspace_key(root)
    assert len(key) == 32
    path = root / "secrets" / "deid.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert workspace_key(root) == key
    assert workspace_key(str(root)) == key
    assert workspace_key(tmp_path / "other") != key
    assert [p.name for p in path.parent.iterdir()] == ["deid.key"]


def test_encrypted_workspace_key_comes_from_its_key_store(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    key = workspace_key(ws)
    assert len(key) == 32 and key == ws.secret("deid")
    ws.close()
    again = open_workspace(tmp_path / "ws")
    assert workspace_key(again) == key
    again.close()
    # Never written to disk in the clear.
    for f in (tmp_path / "ws").rglob("*"):
        if f.is_file():
            assert key not in f.read_bytes(), f
    other = open_workspace(tmp_path / "ws2")
    assert workspace_key(other) != key
    other.close()


def test_workspace_key_damaged_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "secrets").mkdir(parents=True)
    (root / "secrets" / "deid.key").write_bytes(b"too short")
    with pytest.raises(DeidError, match="expected 32"):
        workspace_key(root)


# --- helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-9"),
        (9, "0-9"),
        (10, "10-19"),
        (45, "40-49"),
        (89, "80-89"),
        (90, "90+"),
        (104, "90+"),
        (None, "unknown"),
        (-1, "unknown"),
    ],
)
def test_age_band(age: int | None, band: str) -> None:
    assert age_band(age) == band


def test_zip3_and_restricted_list() -> None:
    assert len(restricted_zip3()) == 17
    assert zip3("02139") == "021"
    assert zip3("02139-4307") == "021"
    assert zip3(" 941031234 ") == "941"
    for prefix in (
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    ):
        assert zip3(prefix + "12") == "000"
    assert zip3("SW1A 1AA") is None
    assert zip3("1234") is None
    assert zip3(None) is None


def test_date_offsets_are_nonzero_bounded_and_keyed() -> None:
    offsets = [date_offset_days(KEY, f"patient-{i}") for i in range(300)]
    assert all(1 <= o <= MAX_SHIFT_DAYS for o in offsets)
    assert len(set(offsets)) > 100
    assert date_offset_days(KEY, "Patient/ABC") == date_offset_days(KEY, "abc")
    assert [date_offset_days(OTHER_KEY, f"patient-{i}") for i in range(20)] != offsets[:20]


# --- Safe Harbor on a small records database --------------------------------------------------


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect(str(tmp_path / "records.duckdb"))
    prov = (
        "patient_id VARCHAR, resource_id VARCHAR, source_file VARCHAR, source_id VARCHAR, import_id VARCHAR"
    )
    db.execute(
        f"""CREATE TABLE patients ({prov}, family VARCHAR, given VARCHAR, prefix VARCHAR, birth_date DATE,
        deceased_date DATE, gender VARCHAR, race VARCHAR, ethnicity VARCHAR, marital_status VARCHAR,
        address_line VARCHAR, city VARCHAR, state VARCHAR, postal_code VARCHAR, country VARCHAR,
        lat DOUBLE, lon DOUBLE, phone VARCHAR, email VARCHAR, ssn VARCHAR, mrn VARCHAR,
        drivers_license VARCHAR, passport VARCHAR, language VARCHAR, favourite_colour VARCHAR)"""
    )
    rows = [
        ("pat-a", "Hartmann", "Ottilie", "Mrs.", "1950-03-14", None, "female", "02139"),
        ("pat-b", "Quigley", "Barnaby", "Mr.", "1930-07-01", None, "male", "03612"),
        ("pat-c", "Okonkwo", "Chidi", None, "1990-12-31", "2020-01-15", "male", "89301-1234"),
        ("pat-d", "Lindqvist", "Saga", "Ms.", "1935-06-30", "2024-06-29", "female", "SW1A 1AA"),
    ]
    for pid, family, given, prefix, birth, death, gender, postal in rows:
        db.execute(
            "INSERT INTO patients VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'white', 'nonhispanic', 'M', "
            "'12 Elm Street', 'Springfield', 'MA', ?, 'US', 42.1, -71.2, '555-201-3344', 'x@example.org', "
            "'999-12-3456', 'MRN-77', 'S999', 'X123', 'en', 'blue')",
            [
                pid,
                pid,
                f"/data/{given}_{family}_{pid}.json",
                "src-1",
                "imp-1",
                family,
                given,
                prefix,
                birth,
                death,
                gender,
                postal,
            ],
        )
    db.execute(
        f"""CREATE TABLE encounters ({prov}, encounter_id VARCHAR, start TIMESTAMP, "end" TIMESTAMP,
        class VARCHAR, status VARCHAR, type_code VARCHAR, type_display VARCHAR, reason_code VARCHAR,
        reason_display VARCHAR, provider VARCHAR, organization VARCHAR)"""
    )
    db.execute(
        "INSERT INTO encounters VALUES "
        "('pat-a', 'enc-1', 'f.json', 'src-1', 'imp-1', 'enc-1', '2020-05-01 10:00', '2020-05-01 11:00', 'AMB', 'finished', '1', 'Visit', NULL, NULL, 'Practitioner/dr1', 'Organization/o1'),"
        "('pat-b', 'enc-2', 'f.json', 'src-1', 'imp-1', 'enc-2', '2021-02-03 08:30', NULL, 'EMER', 'finished', '2', 'ER', NULL, NULL, NULL, NULL)"
    )
    db.execute(
        f"""CREATE TABLE conditions ({prov}, encounter_id VARCHAR, code_system VARCHAR, code VARCHAR,
        display VARCHAR, clinical_status VARCHAR, verification_status VARCHAR, onset TIMESTAMP,
        abatement TIMESTAMP, recorded TIMESTAMP, category VARCHAR, note VARCHAR, mystery_number DOUBLE,
        extra_date DATE, linked_id VARCHAR)"""
    )
    db.execute(
        "INSERT INTO conditions VALUES "
        "('pat-a', 'cond-1', 'f.json', 'src-1', 'imp-1', 'Encounter/enc-1', 'http://snomed.info/sct', '44054006', "
        "'Diabetes', 'active', 'confirmed', '2020-05-01 10:00', NULL, '2020-05-01 10:00', 'problem', "
        "'Ottilie said so', 42.0, '2020-05-02', 'cond-9'),"
        "('pat-b', 'cond-2', 'f.json', 'src-1', 'imp-1', 'enc-2', 'http://snomed.info/sct', '38341003', "
        "'Hypertension', 'active', 'confirmed', '2021-02-03 08:30', NULL, NULL, 'problem', NULL, 1.0, NULL, NULL)"
    )
    db.execute(
        f"""CREATE TABLE diagnostic_reports ({prov}, encounter_id VARCHAR, status VARCHAR, category VARCHAR,
        code VARCHAR, display VARCHAR, effective TIMESTAMP, result_ids VARCHAR[])"""
    )
    db.execute(
        "INSERT INTO diagnostic_reports VALUES ('pat-a', 'dr-1', 'f.json', 'src-1', 'imp-1', 'enc-1', 'final', "
        "'LAB', '57698-3', 'Lipid panel', '2020-05-01 10:00', ['obs-1', 'obs-2'])"
    )
    db.execute(
        f"""CREATE TABLE observations ({prov}, encounter_id VARCHAR, category VARCHAR, code_system VARCHAR,
        code VARCHAR, display VARCHAR, component VARCHAR, value_num DOUBLE, unit VARCHAR, effective TIMESTAMP)"""
    )
    db.execute(
        "INSERT INTO observations VALUES ('pat-a', 'obs-1', 'f.json', 'src-1', 'imp-1', 'enc-1', 'laboratory', "
        "'http://loinc.org', '2093-3', 'Cholesterol', NULL, 190.0, 'mg/dL', '2020-05-01 10:00')"
    )
    return db


def test_patients_identifiers_removed_and_quasi_generalised(con: duckdb.DuckDBPyConnection) -> None:
    df = deidentified_table(con, "patients", KEY, as_of=AS_OF).set_index("patient_id")
    for col in (
        "family",
        "given",
        "prefix",
        "address_line",
        "city",
        "lat",
        "lon",
        "phone",
        "email",
        "ssn",
        "mrn",
        "drivers_license",
        "passport",
        "postal_code",
        "favourite_colour",
    ):
        assert col not in df.columns, col
    for col in ("gender", "race", "ethnicity", "state", "country", "language", "zip3", "age", "age_band"):
        assert col in df.columns, col
    pa, pb, pc, pd_ = (pseudonym(KEY, p, "patient") for p in ("pat-a", "pat-b", "pat-c", "pat-d"))
    assert set(df.index) == {pa, pb, pc, pd_}
    assert df.loc[pa, "resource_id"] == pa
    assert df.loc[pa, "zip3"] == "021"
    assert df.loc[pb, "zip3"] == "000"  # 036 is restricted
    assert df.loc[pc, "zip3"] == "000"  # 893 is restricted
    assert pd.isna(df.loc[pd_, "zip3"])  # not a US ZIP
    # 75 at AS_OF; 94 -> 90+, birth date suppressed; died at 29; died the day before turning 89.
    assert (df.loc[pa, "age"], df.loc[pa, "age_band"]) == (75, "70-79")
    assert pd.isna(df.loc[pb, "age"]) and df.loc[pb, "age_band"] == "90+"
    assert pd.isna(df.loc[pb, "birth_date"])
    assert (df.loc[pc, "age"], df.loc[pc, "age_band"]) == (29, "20-29")
    assert (df.loc[pd_, "age"], df.loc[pd_, "age_band"]) == (88, "80-89")
    shift = date_offset_days(KEY, "pat-a")
    assert df.loc[pa, "birth_date"] == pd.Timestamp("1950-03-14") + pd.Timedelta(days=shift)
    assert df.loc[pa, "source_file"].startswith("F-")
    text = df.to_csv()
    for secret in (
        "Hartmann",
        "Ottilie",
        "Quigley",
        "Elm Street",
        "Springfield",
        "555-201-3344",
        "999-12-3456",
        "MRN-77",
        "x@example.org",
        "02139",
        "1950-03-14",
        "pat-a",
        "blue",
    ):
        assert secret not in text, secret


def test_dates_shift_consistently_per_patient_across_tables(con: duckdb.DuckDBPyConnection) -> None:
    pat = deidentified_table(con, "patients", KEY, as_of=AS_OF).set_index("patient_id")
    enc = deidentified_table(con, "encounters", KEY).set_index("encounter_id")
    cond = deidentified_table(con, "conditions", KEY)
    pa, pb = pseudonym(KEY, "pat-a", "patient"), pseudonym(KEY, "pat-b", "patient")
    e1, e2 = pseudonym(KEY, "enc-1", "encounter"), pseudonym(KEY, "enc-2", "encounter")
    da, db_ = date_offset_days(KEY, "pat-a"), date_offset_days(KEY, "pat-b")
    assert da != db_
    assert enc.loc[e1, "start"] == pd.Timestamp("2020-05-01 10:00") + pd.Timedelta(days=da)
    assert enc.loc[e1, "end"] - enc.loc[e1, "start"] == pd.Timedelta(hours=1)
    assert enc.loc[e2, "start"] == pd.Timestamp("2021-02-03 08:30") + pd.Timedelta(days=db_)
    assert pd.isna(enc.loc[e2, "end"])
    # Intervals within a patient survive: birth to encounter is unchanged.
    assert (enc.loc[e1, "start"] - pat.loc[pa, "birth_date"]) == (
        pd.Timestamp("2020-05-01 10:00") - pd.Timestamp("1950-03-14")
    )
    # Joins still work: condition -> encounter (given as a reference) -> patient.
    joined = cond.merge(enc.reset_index()[["encounter_id", "patient_id", "start"]], on="encounter_id")
    assert len(joined) == 2
    assert (joined["patient_id_x"] == joined["patient_id_y"]).all()
    assert (joined["onset"] == joined["start"]).all()
    assert set(joined["patient_id_x"]) == {pa, pb}
    assert enc.loc[e1, "provider"].startswith("PR-")


def test_unknown_columns_get_safe_defaults(con: duckdb.DuckDBPyConnection) -> None:
    cond = deidentified_table(con, "conditions", KEY).set_index("resource_id")
    c1 = pseudonym(KEY, "cond-1", "resource")
    assert "note" not in cond.columns  # unknown text: dropped
    assert "mystery_number" not in cond.columns  # unknown number: dropped
    assert cond.loc[c1, "extra_date"] == pd.Timestamp("2020-05-02") + pd.Timedelta(
        days=date_offset_days(KEY, "pat-a")
    )  # unknown date: shifted
    assert cond.loc[c1, "linked_id"] == pseudonym(KEY, "cond-9", "id")  # unknown reference: pseudonymised
    assert cond.loc[c1, "code"] == "44054006" and cond.loc[c1, "display"] == "Diabetes"


def test_list_references_join_to_their_rows(con: duckdb.DuckDBPyConnection) -> None:
    dr = deidentified_table(con, "diagnostic_reports", KEY)
    obs = deidentified_table(con, "observations", KEY)
    ids = list(dr.loc[0, "result_ids"])
    assert ids == [pseudonym(KEY, "obs-1", "observation"), pseudonym(KEY, "obs-2", "observation")]
    assert obs.loc[0, "resource_id"] == ids[0]
    assert obs.loc[0, "encounter_id"] == dr.loc[0, "encounter_id"]


def test_year_mode(con: duckdb.DuckDBPyConnection) -> None:
    pat = deidentified_table(con, "patients", KEY, date_mode="year", as_of=AS_OF).set_index("patient_id")
    enc = deidentified_table(con, "encounters", KEY, date_mode="year")
    pa, pb, pc = (pseudonym(KEY, p, "patient") for p in ("pat-a", "pat-b", "pat-c"))
    assert pat.loc[pa, "birth_date"] == 1950
    assert pd.isna(pat.loc[pb, "birth_date"])  # 90+: year suppressed too
    assert pat.loc[pc, "deceased_date"] == 2020
    assert sorted(enc["start"].tolist()) == [2020, 2021]
    with pytest.raises(DeidError):
        deidentified_table(con, "patients", KEY, date_mode="month")  # type: ignore[arg-type]


def test_other_key_gives_other_pseudonyms_and_offsets(con: duckdb.DuckDBPyConnection) -> None:
    a = deidentified_table(con, "encounters", KEY)
    b = deidentified_table(con, "encounters", OTHER_KEY)
    assert set(a["patient_id"]).isdisjoint(set(b["patient_id"]))
    assert a["start"].tolist() != b["start"].tolist()


def test_missing_table_and_bad_name(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(DeidError, match="no table"):
        deidentified_table(con, "claims", KEY)
    with pytest.raises(DeidError):
        deidentified_table(con, 'patients"; DROP TABLE patients; --', KEY)


def test_every_schema_column_has_a_deliberate_rule() -> None:
    """Each date column of docs/records-schema.md is shifted and each listed column has a rule."""
    schema = (Path(__file__).resolve().parent.parent / "docs" / "records-schema.md").read_text("utf-8")
    seen = 0
    for match in re.finditer(r"^- `(\w+)`: (.+?)(?=^- |\Z)", schema, flags=re.M | re.S):
        table, body = match.group(1), " ".join(match.group(2).split())
        for part in body.split(","):
            words = part.strip().split()
            if len(words) < 2 or not re.fullmatch(r"\w+", words[0]):
                continue
            col, dtype = words[0], words[1]
            if dtype in {"DATE", "TIMESTAMP"}:
                rule = rules_for(table, [col], {col: dtype})[col]
                assert rule in {"date", "birth_date"}, (table, col, rule)
                seen += 1
    assert seen >= 20
    for col in ("family", "given", "address_line", "city", "lat", "lon", "phone", "email", "ssn", "mrn"):
        assert TABLE_RULES["patients"][col] == "drop"


# --- k-anonymity ------------------------------------------------------------------------------


def test_k_anonymity_on_frame() -> None:
    df = pd.DataFrame(
        {
            "age_band": ["30-39"] * 5 + ["40-49"] * 3 + ["90+"],
            "gender": ["female"] * 5 + ["male"] * 3 + ["female"],
            "zip3": ["021"] * 5 + ["021"] * 3 + [None],
        }
    )
    rep = k_anonymity(df, threshold=5)
    assert rep.k == 1 and not rep.ok
    assert rep.n_records == 9 and rep.n_classes == 3
    assert rep.records_in_small_classes == 4
    assert rep.small_classes[0] == {"age_band": "90+", "sex": "female", "zip3": "unknown", "count": 1}
    assert rep.small_classes[1]["count"] == 3
    assert k_anonymity(df.iloc[:5], threshold=5).ok
    with pytest.raises(DeidError):
        k_anonymity(df, quasi=("age_band", "income"))


def test_k_anonymity_on_database_matches_deidentified_patients(con: duckdb.DuckDBPyConnection) -> None:
    from_db = k_anonymity(con, as_of=AS_OF, threshold=2)
    from_df = k_anonymity(deidentified_table(con, "patients", KEY, as_of=AS_OF), threshold=2)
    assert from_db == from_df
    assert from_db.k == 1 and from_db.n_classes == 4


def test_deidentified_frame_round_trips_to_parquet(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    for table in ("patients", "encounters", "conditions", "diagnostic_reports"):
        df = deidentified_table(con, table, KEY, as_of=AS_OF)
        df.to_parquet(tmp_path / f"{table}.parquet")
        back = pd.read_parquet(tmp_path / f"{table}.parquet")
        assert len(back) == len(df)
    assert os.path.getsize(tmp_path / "patients.parquet") > 0


def test_free_text_columns_use_the_patients_own_identifiers(con: duckdb.DuckDBPyConnection) -> None:
    prov = (
        "patient_id VARCHAR, resource_id VARCHAR, source_file VARCHAR, source_id VARCHAR, import_id VARCHAR"
    )
    con.execute(f"CREATE TABLE documents ({prov}, encounter_id VARCHAR, date TIMESTAMP, text VARCHAR)")
    con.execute(
        "INSERT INTO documents VALUES ('pat-a', 'doc-1', 'f.json', 'src-1', 'imp-1', 'enc-1', '2020-05-01', "
        "'# History of Present Illness\nottilie hartmann is seen today; lives at 12 Elm Street. "
        "Call 555 201 3344 on 2020-05-02.')"
    )
    con.execute(
        f"CREATE TABLE obs_text ({prov}, value_text VARCHAR)"
    )  # an unknown table: value_text has no rule there, so it is dropped
    docs = deidentified_table(con, "documents", KEY)
    text = docs.loc[0, "text"]
    for secret in ("ottilie", "hartmann", "Elm Street", "555 201 3344", "2020-05-02"):
        assert secret not in text, secret
    assert "# History of Present Illness" in text
    assert "value_text" not in deidentified_table(con, "obs_text", KEY).columns


def test_short_text_keeps_coded_values(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE observations ADD COLUMN value_text VARCHAR")
    con.execute(
        "INSERT INTO observations (patient_id, resource_id, value_text) VALUES "
        "('pat-a', 'obs-7', 'Myocardial Infarction'), ('pat-a', 'obs-8', 'Never smoker'), "
        "('pat-b', 'obs-9', 'Barnaby said call 555-201-3344')"
    )
    obs = deidentified_table(con, "observations", KEY).set_index("resource_id")
    assert obs.loc[pseudonym(KEY, "obs-7", "observation"), "value_text"] == "Myocardial Infarction"
    assert obs.loc[pseudonym(KEY, "obs-8", "observation"), "value_text"] == "Never smoker"
    redacted = obs.loc[pseudonym(KEY, "obs-9", "observation"), "value_text"]
    assert "Barnaby" not in redacted and "555-201-3344" not in redacted
