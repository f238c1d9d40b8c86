"""Cohort builder: criteria, AND/OR/NOT, attrition, JSON round trip, invalid definitions, run_sql."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.cohort.cohort_builder import (
    CohortDefinition,
    describe,
    load_definition,
    parse_definition,
    run_cohort,
    run_sql,
    save_definition,
)
from workbench.errors import CohortError

FIX = Path(__file__).parent / "fixtures" / "cohort"


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(str(tmp_path / "records.duckdb"))
    c.execute((FIX / "schema.sql").read_text())
    c.execute((FIX / "records.sql").read_text())
    return c


def _ids(con: duckdb.DuckDBPyConnection, *criteria: dict[str, Any], index: str = "2021-06-01") -> list[str]:
    d = {"schema_version": 1, "name": "t", "index_date": index, "criteria": list(criteria)}
    return list(run_cohort(con, d).patients["patient_id"])


def test_condition_criteria(con: duckdb.DuckDBPyConnection) -> None:
    assert _ids(con, {"type": "condition", "codes": ["44054006"]}) == ["p1"]
    assert _ids(con, {"type": "condition", "codes": ["44054006"], "system": "snomed"}) == ["p1"]
    assert _ids(con, {"type": "condition", "codes": ["44054006"], "system": "icd10cm"}) == []
    assert _ids(con, {"type": "condition", "codes": ["E11*"], "system": "icd10cm"}) == ["p4"]
    assert _ids(con, {"type": "condition", "text": "DIABETES"}) == ["p1", "p4"]
    assert _ids(con, {"type": "condition", "text": "hypertension"}) == ["p1", "p6"]
    # a LIKE wildcard typed by the user is matched literally
    assert _ids(con, {"type": "condition", "text": "%"}) == []
    assert _ids(con, {"type": "condition", "text": "diabetes", "window": {"start": "2019-01-01"}}) == ["p1"]
    bronchitis = {"type": "condition", "codes": ["10509002"], "active_at_index": True}
    assert _ids(con, bronchitis, index="2021-01-10") == ["p3"]
    assert _ids(con, bronchitis, index="2021-02-01") == []  # abated 2021-01-20


def test_lab_criteria_with_unit_normalisation(con: duckdb.DuckDBPyConnection) -> None:
    # LDL stored as 120 mg/dL (p1), 5.05 mmol/L (p2), 150 mg/dL (p3)
    ldl = {"type": "lab", "codes": ["18262-6"], "op": ">=", "value": 140, "unit": "mg/dL"}
    assert _ids(con, ldl) == ["p2", "p3"]
    assert _ids(con, {**ldl, "value": 3.8, "unit": "mmol/L"}) == ["p2", "p3"]  # 146.9 mg/dL
    assert _ids(con, {**ldl, "value": 4.0, "unit": "mmol/L"}) == ["p2"]  # 154.7 mg/dL
    assert _ids(con, {**ldl, "value": 5.0, "unit": "mmol/L"}) == ["p2"]
    assert _ids(con, {**ldl, "op": "<", "value": 130, "unit": "mg/dL"}) == ["p1"]
    # eGFR "mL/min" rows count as mL/min/1.73 m2 for eGFR codes
    egfr = {"type": "lab", "codes": ["33914-3"], "op": "<", "value": 53, "unit": "mL/min/{1.73_m2}"}
    assert _ids(con, egfr) == ["p2", "p4"]
    assert _ids(con, {**egfr, "which": "latest"}) == ["p2"]  # p4's latest is 55
    # BP diastolic with a missing unit (mm[Hg] implied)
    assert _ids(con, {"type": "lab", "codes": ["8462-4"], "op": ">=", "value": 88, "unit": "mmHg"}) == [
        "p1",
        "p3",
    ]
    # temperature stored in [degF]
    assert _ids(con, {"type": "lab", "codes": ["8310-5"], "op": ">=", "value": 38, "unit": "Cel"}) == ["p3"]


def test_lab_latest_and_windows(con: duckdb.DuckDBPyConnection) -> None:
    a1c = {"type": "lab", "codes": ["4548-4"], "op": ">=", "value": 7.0, "unit": "%"}
    assert _ids(con, a1c) == ["p1"]
    assert _ids(con, {**a1c, "value": 6.9, "which": "latest"}) == ["p1"]
    # absolute window that ends before p1's 7.1 result
    assert _ids(con, {**a1c, "value": 6.5, "window": {"end": "2020-03-01"}}) == ["p1"]
    assert _ids(con, {**a1c, "window": {"end": "2020-03-01"}}) == []
    # relative window: 200 days before 2020-07-01 covers both of p1's results
    rel = {**a1c, "value": 6.5, "window": {"days_before": 200}}
    assert _ids(con, rel, index="2020-07-01") == ["p1"]
    assert _ids(con, rel, index="2022-07-01") == []
    assert _ids(con, {**rel, "window": {"days_before": 0, "days_after": 30}}, index="2020-06-01") == ["p1"]


def test_lab_unconvertible_units_warn(con: duckdb.DuckDBPyConnection) -> None:
    d = {
        "schema_version": 1,
        "name": "glucose",
        "criteria": [{"type": "lab", "codes": ["2345-7"], "op": ">", "value": 0, "unit": "mg/dL"}],
    }
    result = run_cohort(con, d)
    assert result.n == 0
    assert any("furlongs" in w for w in result.warnings)


def test_medication_age_sex_encounter(con: duckdb.DuckDBPyConnection) -> None:
    assert _ids(con, {"type": "medication", "codes": ["860975"]}) == ["p1", "p4"]
    assert _ids(con, {"type": "medication", "text": "metformin", "status": ["active"]}) == ["p1"]
    assert _ids(con, {"type": "medication", "text": "statin", "window": {"start": "2017-01-01"}}) == ["p4"]
    # ages at 2021-06-01: p1 61, p2 71, p3 30, p4 81, p5 11, p6 45
    assert _ids(con, {"type": "age", "min": 45, "max": 71}) == ["p1", "p2", "p6"]
    assert _ids(con, {"type": "age", "max": 17}) == ["p5"]
    assert _ids(con, {"type": "age", "min": 30}, index="2020-07-19") == [
        "p1",
        "p2",
        "p4",
        "p6",
    ]  # p3 turns 30 next day
    assert _ids(con, {"type": "age", "min": 30}, index="2020-07-20") == ["p1", "p2", "p3", "p4", "p6"]
    assert _ids(con, {"type": "sex", "values": ["female"]}) == ["p1", "p3", "p5"]
    assert _ids(con, {"type": "encounter", "classes": ["emer"]}) == ["p3", "p6"]
    assert _ids(con, {"type": "encounter", "classes": ["AMB"], "min_count": 2}) == ["p1"]
    assert _ids(con, {"type": "encounter", "window": {"start": "2020-01-01", "end": "2020-12-31"}}) == ["p1"]
    assert _ids(con, {"type": "encounter", "window": {"start": "2020-01-01", "end": "2020-01-10"}}) == ["p1"]


def test_and_or_not_nesting(con: duckdb.DuckDBPyConnection) -> None:
    female = {"type": "sex", "values": ["female"]}
    diabetes = {"type": "condition", "text": "diabetes"}
    low_egfr = {"type": "lab", "codes": ["33914-3"], "op": "<", "value": 60, "unit": "mL/min/{1.73_m2}"}
    assert _ids(con, {"type": "and", "criteria": [female, diabetes]}) == ["p1"]
    assert _ids(con, {"type": "or", "criteria": [diabetes, low_egfr]}) == ["p1", "p2", "p3", "p4"]
    assert _ids(con, {"type": "not", "criterion": female}) == ["p2", "p4", "p6"]
    nested = {
        "type": "or",
        "criteria": [
            {"type": "and", "criteria": [female, {"type": "not", "criterion": diabetes}]},
            {
                "type": "and",
                "criteria": [
                    low_egfr,
                    {"type": "not", "criterion": {"type": "medication", "text": "statin"}},
                ],
            },
        ],
    }
    assert _ids(con, nested) == ["p2", "p3", "p5"]
    assert _ids(con, {"type": "not", "criterion": {"type": "not", "criterion": female}}) == ["p1", "p3", "p5"]


def test_attrition_and_evidence(con: duckdb.DuckDBPyConnection) -> None:
    d = parse_definition(
        {
            "schema_version": 1,
            "name": "adults with kidney or glucose signals",
            "index_date": "2021-06-01",
            "criteria": [
                {"type": "age", "min": 18, "label": "adults"},
                {
                    "type": "or",
                    "criteria": [
                        {
                            "type": "lab",
                            "codes": ["33914-3"],
                            "op": "<",
                            "value": 60,
                            "unit": "mL/min/{1.73_m2}",
                        },
                        {"type": "lab", "codes": ["4548-4"], "op": ">=", "value": 6.5, "unit": "%"},
                    ],
                },
                {"type": "not", "criterion": {"type": "medication", "text": "atorvastatin"}},
                {"type": "sex", "values": ["male"]},
            ],
        }
    )
    r = run_cohort(con, d)
    assert list(r.attrition["n"]) == [6, 5, 4, 3, 1]
    assert list(r.attrition["criterion"])[:2] == ["all patients", "adults"]
    assert r.n == 1
    row = r.patients.iloc[0]
    assert row.patient_id == "p2" and row.sex == "male" and row.age == 71
    ev = row.evidence
    assert ev["adults"] == ["age 71"]
    lab_key = describe(d.criteria[1])
    assert ev[lab_key] == [
        "33914-3 = 44.0 mL/min/{1.73_m2} (2019-05-01)",
        "33914-3 = 52.0 mL/min (2019-02-01)",
        "33914-3 = 55.0 mL/min/{1.73_m2} (2019-01-01)",
    ]
    assert row.record_ids == ["o201", "o202", "o203"]
    out = r.to_dict()
    assert out["attrition"][-1] == {"criterion": "sex male", "n": 1} and out["n"] == 1
    json.dumps(out)


def test_index_date_override(con: duckdb.DuckDBPyConnection) -> None:
    d = {
        "schema_version": 1,
        "name": "kids",
        "index_date": "2021-06-01",
        "criteria": [{"type": "age", "max": 17}],
    }
    assert run_cohort(con, d).n == 1
    assert run_cohort(con, d, index_date=date(2040, 1, 1)).n == 0


def test_json_round_trip(tmp_path: Path) -> None:
    raw = {
        "schema_version": 1,
        "name": "round trip",
        "description": "all criterion kinds",
        "index_date": "2021-06-01",
        "criteria": [
            {"type": "age", "min": 18, "max": 90},
            {"type": "sex", "values": ["female", "male"]},
            {"type": "condition", "codes": ["E11*"], "system": "icd10cm", "active_at_index": True},
            {
                "type": "or",
                "criteria": [
                    {
                        "type": "lab",
                        "codes": ["4548-4"],
                        "op": ">=",
                        "value": 6.5,
                        "unit": "%",
                        "which": "latest",
                    },
                    {"type": "medication", "text": "metformin", "window": {"days_before": 365}},
                ],
            },
            {"type": "not", "criterion": {"type": "encounter", "classes": ["IMP"], "min_count": 2}},
        ],
    }
    d = parse_definition(raw)
    path = save_definition(d, tmp_path / "def.json")
    again = load_definition(path)
    assert again == d
    assert json.loads(path.read_text())["schema_version"] == 1
    assert isinstance(again, CohortDefinition)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schema_version": 2}, "schema_version"),
        ({"schema_version": None}, "schema_version"),
        ({"criteria": []}, "criteria"),
        ({"name": ""}, "name"),
        ({"criteria": [{"type": "blood_type"}]}, "criteria[0]"),
        (
            {"criteria": [{"type": "lab", "codes": ["4548-4"], "op": "~", "value": 1, "unit": "%"}]},
            "criteria[0].op",
        ),
        (
            {"criteria": [{"type": "lab", "codes": ["4548-4"], "op": ">", "value": 1, "unit": "furlongs"}]},
            "criteria[0]",
        ),
        (
            {"criteria": [{"type": "lab", "codes": [], "op": ">", "value": 1, "unit": "%"}]},
            "criteria[0].codes",
        ),
        ({"criteria": [{"type": "condition"}]}, "criteria[0]"),
        ({"criteria": [{"type": "age"}]}, "criteria[0]"),
        ({"criteria": [{"type": "age", "min": 50, "max": 20}]}, "criteria[0]"),
        ({"criteria": [{"type": "sex", "values": ["robot"]}]}, "criteria[0].values[0]"),
        (
            {"criteria": [{"type": "not", "criterion": {"type": "age", "min": "old"}}]},
            "criteria[0].criterion.min",
        ),
        (
            {"criteria": [{"type": "or", "criteria": [{"type": "condition", "text": "x", "colour": "red"}]}]},
            "criteria[0].criteria[0].colour",
        ),
        (
            {"criteria": [{"type": "encounter", "window": {"start": "2020-01-01", "days_before": 3}}]},
            "criteria[0].window",
        ),
        ({"index_date": "yesterday"}, "index_date"),
    ],
)
def test_invalid_definitions_name_the_field(change: dict[str, Any], field: str) -> None:
    raw: dict[str, Any] = {"schema_version": 1, "name": "x", "criteria": [{"type": "age", "min": 1}]}
    raw.update(change)
    if raw["schema_version"] is None:
        del raw["schema_version"]
    with pytest.raises(CohortError) as exc:
        parse_definition(raw, source="def.json")
    assert f"'{field}" in str(exc.value) and "def.json" in str(exc.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CohortError, match="no such"):
        load_definition(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1,')
    with pytest.raises(CohortError, match="bad.json: not valid JSON"):
        load_definition(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(CohortError, match="JSON object"):
        load_definition(bad)


def test_user_values_are_parameters_not_sql(con: duckdb.DuckDBPyConnection) -> None:
    evil = "x'); DROP TABLE patients; --"
    assert _ids(con, {"type": "condition", "text": evil}) == []
    assert _ids(con, {"type": "medication", "codes": [evil]}) == []
    assert _ids(con, {"type": "encounter", "classes": [evil]}) == []
    assert con.execute("SELECT count(*) FROM patients").fetchone() == (6,)
    d = parse_definition(
        {"schema_version": 1, "name": "n", "criteria": [{"type": "condition", "text": evil}]}
    )
    r = run_cohort(con, d)
    assert evil not in r.sql and evil in r.params[-1]


def test_run_sql(con: duckdb.DuckDBPyConnection) -> None:
    df = run_sql(con, "SELECT gender, count(*) AS n FROM patients GROUP BY gender ORDER BY gender;")
    assert df.to_dict(orient="list") == {"gender": ["female", "male"], "n": [3, 3]}
    assert len(run_sql(con, "SELECT * FROM observations", limit=5)) == 5
    assert run_sql(con, "SELECT count(*) AS n FROM observations WHERE unit = ?", ["mg/dL"]).n[0] == 5
    for bad in [
        "DELETE FROM patients",
        "DROP TABLE patients",
        "UPDATE patients SET gender = 'x'",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; DELETE FROM patients",
        "COPY patients TO '/tmp/out.csv'",
        "ATTACH '/tmp/other.duckdb'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM '/etc/hosts.csv'",
        'SELECT * FROM "/etc/hosts"',
        "SELECT * FROM glob('/*')",
        "PRAGMA database_list",
        "",
    ]:
        with pytest.raises(CohortError):
            run_sql(con, bad)
    with pytest.raises(CohortError, match="SQL failed"):
        run_sql(con, "SELECT no_such_column FROM patients")
    assert con.execute("SELECT count(*) FROM patients").fetchone() == (6,)
    # the connection is usable afterwards (the transaction was rolled back)
    con.execute("CREATE TEMP TABLE after_check AS SELECT 1 AS x")


def test_run_sql_inside_callers_transaction(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("BEGIN TRANSACTION")
    assert run_sql(con, "SELECT count(*) AS n FROM patients").n[0] == 6
    con.execute("COMMIT")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    threshold=st.floats(min_value=100, max_value=220, allow_nan=False),
    op=st.sampled_from([">=", ">", "<", "<="]),
)
def test_lab_threshold_same_in_any_unit(con: duckdb.DuckDBPyConnection, threshold: float, op: str) -> None:
    """A threshold in mmol/L selects the same patients as the same threshold in mg/dL, and as Python does."""
    from workbench.cohort.labs import lab_results

    crit = {"type": "lab", "codes": ["18262-6"], "op": op, "value": threshold, "unit": "mg/dL"}
    mg = _ids(con, crit)
    mmol = _ids(con, {**crit, "value": threshold / 38.67, "unit": "mmol/L"})
    df = lab_results(con, codes=["18262-6"])
    cmp = {">=": df.value_norm >= threshold, ">": df.value_norm > threshold}.get(op)
    if cmp is None:
        cmp = df.value_norm < threshold if op == "<" else df.value_norm <= threshold
    expected = sorted(set(df[cmp].patient_id))
    assert mg == expected
    # a value sitting within float rounding of the threshold may fall either way in another unit
    if not any(abs(v - threshold) < 1e-6 for v in df.value_norm):
        assert mmol == expected
