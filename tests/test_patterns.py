"""Chronic-pattern review: each detector fires on its positive case and stays quiet on negatives."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from workbench.cohort.patterns import Finding, load_patterns, review_cohort, review_patterns
from workbench.errors import RecordsError

FIX = Path(__file__).parent / "fixtures" / "cohort"

_OBS_COLS = (
    "patient_id, resource_id, source_file, source_id, import_id, category, code, component, "
    "value_num, unit, unit_code, effective"
)


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(str(tmp_path / "records.duckdb"))
    c.execute((FIX / "schema.sql").read_text())
    c.execute((FIX / "records.sql").read_text())
    return c


@pytest.fixture
def blank(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """The schema and one adult patient ``x`` with no results yet."""
    c = duckdb.connect(str(tmp_path / "blank.duckdb"))
    c.execute((FIX / "schema.sql").read_text())
    c.execute(
        "INSERT INTO patients (patient_id, resource_id, birth_date, gender) VALUES ('x', 'x', DATE '1970-01-01', 'male')"
    )
    return c


def _add(
    con: duckdb.DuckDBPyConnection, rid: str, code: str, value: float, unit: str | None, when: str
) -> None:
    comp = code if code in ("8480-6", "8462-4") else None
    panel = "85354-9" if comp else code
    con.execute(
        f"INSERT INTO observations ({_OBS_COLS}) VALUES ('x', ?, 't', 's', 'i', 'laboratory', ?, ?, ?, ?, ?, ?)",
        [rid, panel, comp, value, unit, unit, when],
    )


def _ids(findings: list[Finding]) -> dict[str, Finding]:
    return {f.pattern_id: f for f in findings}


def test_shipped_detectors_load_and_every_threshold_has_a_reference() -> None:
    ps = load_patterns()
    assert {p.id for p in ps.patterns} >= {
        "prediabetes",
        "diabetes",
        "hypertension",
        "ckd",
        "hyperlipidemia",
        "obesity",
    }
    for p in ps.patterns:
        for s in p.stages:
            assert s.reference and s.rule
            for c in s.any_of:
                assert len(c.reference) > 20
    assert "not a diagnosis" in ps.statement and "clinician" in ps.statement


def test_fixture_patients(con: duckdb.DuckDBPyConnection) -> None:
    p1 = _ids(review_patterns(con, "p1"))
    assert set(p1) == {"diabetes", "hypertension", "obesity"}  # prediabetes superseded by diabetes
    assert p1["diabetes"].record_ids == ["o101", "o102", "o103"]
    assert p1["hypertension"].stage == "stage 2 range"
    assert p1["hypertension"].record_ids == ["o104", "o105"]  # o105's diastolic has no unit: mm[Hg] implied
    assert p1["obesity"].stage.startswith("obesity class 1")
    p2 = _ids(review_patterns(con, "p2"))
    assert set(p2) == {"prediabetes", "hypertension", "ckd", "hyperlipidemia", "obesity"}
    assert p2["hypertension"].stage == "stage 1 range"
    assert p2["ckd"].record_ids == ["o201", "o202", "o203"] and p2["ckd"].grade == "G3b range (30-44)"
    assert p2["hyperlipidemia"].stage.startswith("severe")  # 5.05 mmol/L = 195 mg/dL
    assert p2["hyperlipidemia"].evidence[0]["value"] == pytest.approx(195.28, abs=0.01)
    assert p2["obesity"].stage.startswith("overweight")
    # p3: low eGFR twice but 30 days apart, one diabetes-range HbA1c, one high BP: nothing fires.
    assert review_patterns(con, "p3") == []
    # p4: eGFR 50, 65, 55: the normal result in between breaks the run.
    assert review_patterns(con, "p4") == []
    # p5: a child's BMI of 31 is not judged by adult categories.
    assert review_patterns(con, "p5") == []
    assert review_patterns(con, "p6") == []


def test_finding_is_phrased_as_a_pattern_and_serialises(con: duckdb.DuckDBPyConnection) -> None:
    f = _ids(review_patterns(con, "p2"))["ckd"]
    d = f.to_dict()
    json.dumps(d)
    assert d["first_date"].startswith("2019-01-01") and d["last_date"].startswith("2019-05-01")
    assert "worth discussing with a clinician" in d["statement"]
    assert any("KDIGO" in r for r in d["references"])
    assert "diagnos" not in d["label"].lower()


def test_ckd_requires_90_days(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "33914-3", 55, "mL/min/{1.73_m2}", "2020-01-01")
    _add(blank, "b", "33914-3", 50, "mL/min/{1.73_m2}", "2020-01-31")
    assert review_patterns(blank, "x") == []
    _add(blank, "c", "33914-3", 48, "mL/min/{1.73_m2}", "2020-03-30")  # 89 days after the first
    assert review_patterns(blank, "x") == []
    _add(blank, "d", "33914-3", 47, "mL/min/{1.73_m2}", "2020-04-01")  # 91 days
    f = _ids(review_patterns(blank, "x"))["ckd"]
    assert f.record_ids == ["a", "b", "c", "d"] and f.grade == "G3a range (45-59)"


def test_ckd_run_broken_by_normal_result(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "33914-3", 55, "mL/min/{1.73_m2}", "2020-01-01")
    _add(blank, "b", "33914-3", 61, "mL/min/{1.73_m2}", "2020-02-01")
    _add(blank, "c", "33914-3", 50, "mL/min/{1.73_m2}", "2020-06-01")
    assert review_patterns(blank, "x") == []
    _add(blank, "d", "33914-3", 12, "mL/min/{1.73_m2}", "2020-09-15")
    f = _ids(review_patterns(blank, "x"))["ckd"]
    assert f.record_ids == ["c", "d"] and f.grade == "G5 range (below 15)"


def test_diabetes_needs_two_results(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "4548-4", 6.5, "%", "2020-01-01")  # exactly at the threshold
    found = _ids(review_patterns(blank, "x"))
    assert "diabetes" not in found and "prediabetes" not in found
    _add(blank, "b", "4548-4", 48.0, "mmol/mol", "2020-04-01")  # 6.54 % in IFCC units
    found = _ids(review_patterns(blank, "x"))
    assert found["diabetes"].record_ids == ["a", "b"] and "prediabetes" not in found


def test_diabetes_two_different_tests_same_day(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "4548-4", 6.9, "%", "2020-01-01 08:00")
    _add(blank, "b", "1558-6", 7.2, "mmol/L", "2020-01-01 08:00")  # 129.7 mg/dL
    assert "diabetes" in _ids(review_patterns(blank, "x"))


def test_prediabetes_boundaries(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "4548-4", 5.6, "%", "2020-01-01")
    _add(blank, "b", "1558-6", 99, "mg/dL", "2020-01-01")
    assert review_patterns(blank, "x") == []
    _add(blank, "c", "1558-6", 100, "mg/dL", "2021-01-01")
    f = _ids(review_patterns(blank, "x"))["prediabetes"]
    assert f.record_ids == ["c"]


def test_hypertension_needs_two_dates(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "8480-6", 142, "mm[Hg]", "2020-01-01 09:00")
    _add(blank, "a", "8462-4", 85, "mm[Hg]", "2020-01-01 09:00")
    _add(blank, "b", "8480-6", 150, "mm[Hg]", "2020-01-01 15:00")  # same day: one occasion
    _add(blank, "b", "8462-4", 95, "mm[Hg]", "2020-01-01 15:00")
    assert review_patterns(blank, "x") == []
    _add(blank, "c", "8480-6", 125, "mm[Hg]", "2020-03-01 09:00")
    _add(blank, "c", "8462-4", 81, "mm[Hg]", "2020-03-01 09:00")
    f = _ids(review_patterns(blank, "x"))["hypertension"]
    assert f.stage == "stage 1 range" and f.record_ids == ["a", "b", "c"]
    _add(blank, "d", "8480-6", 118, "mm[Hg]", "2020-05-01 09:00")
    _add(blank, "d", "8462-4", 91, "mm[Hg]", "2020-05-01 09:00")
    f = _ids(review_patterns(blank, "x"))["hypertension"]
    assert f.stage == "stage 2 range" and f.record_ids == ["a", "b", "d"]


def test_hypertension_below_thresholds(blank: duckdb.DuckDBPyConnection) -> None:
    for i, day in enumerate(["2020-01-01", "2020-02-01", "2020-03-01"]):
        _add(blank, f"r{i}", "8480-6", 129, "mmHg", day)
        _add(blank, f"r{i}", "8462-4", 79, "mmHg", day)
    assert review_patterns(blank, "x") == []


def test_hyperlipidemia_thresholds(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "18262-6", 159, "mg/dL", "2020-01-01")
    assert review_patterns(blank, "x") == []
    _add(blank, "b", "2089-1", 160, "mg/dL", "2020-02-01")
    assert _ids(review_patterns(blank, "x"))["hyperlipidemia"].stage.startswith("high")
    _add(blank, "c", "18262-6", 4.92, "mmol/L", "2020-03-01")  # 190.3 mg/dL
    f = _ids(review_patterns(blank, "x"))["hyperlipidemia"]
    assert f.stage.startswith("severe") and f.record_ids == ["c"]


def test_obesity_uses_latest_adult_bmi(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "39156-5", 41, "kg/m2", "2019-01-01")
    assert _ids(review_patterns(blank, "x"))["obesity"].stage.startswith("obesity class 3")
    _add(blank, "b", "39156-5", 24.9, "kg/m2", "2020-01-01")
    assert review_patterns(blank, "x") == []
    _add(blank, "c", "39156-5", 25.0, "kg/m2", "2021-01-01")
    f = _ids(review_patterns(blank, "x"))["obesity"]
    assert f.stage.startswith("overweight") and f.record_ids == ["c"]


def test_unconverted_units_are_ignored_not_fatal(blank: duckdb.DuckDBPyConnection) -> None:
    _add(blank, "a", "4548-4", 7.0, "furlongs", "2020-01-01")
    _add(blank, "b", "4548-4", 7.0, "%", "2020-06-01")
    assert review_patterns(blank, "x") == []  # only one comparable result


def test_review_cohort(con: duckdb.DuckDBPyConnection) -> None:
    df = review_cohort(con)
    assert sorted(set(df.patient_id)) == ["p1", "p2"]
    assert len(df) == 8
    sub = review_cohort(con, ["p1"])
    assert set(sub.pattern_id) == {"diabetes", "hypertension", "obesity"}


def test_invalid_detector_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    data = json.loads(load_patterns().model_dump_json())
    data["patterns"][0]["stages"][0]["any_of"][0]["test"] = "nope"
    bad.write_text(json.dumps(data))
    with pytest.raises(RecordsError, match="unknown test 'nope'"):
        load_patterns(bad)
    data = json.loads(load_patterns().model_dump_json())
    del data["patterns"][1]["stages"][0]["any_of"][0]["reference"]
    bad.write_text(json.dumps(data))
    with pytest.raises(RecordsError, match="reference"):
        load_patterns(bad)
    bad.write_text("{")
    with pytest.raises(RecordsError, match="not valid JSON"):
        load_patterns(bad)
