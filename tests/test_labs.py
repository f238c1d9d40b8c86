"""Labs: UCUM units and conversions, reference ranges, flags, lab results and trends."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.cohort.labs import (
    canonical_unit,
    convert,
    flag,
    lab_results,
    normalize,
    reference_range,
    reference_ranges,
    trend_of,
    trends,
)
from workbench.errors import RecordsError, UnitError

FIX = Path(__file__).parent / "fixtures" / "cohort"


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(str(tmp_path / "records.duckdb"))
    c.execute((FIX / "schema.sql").read_text())
    c.execute((FIX / "records.sql").read_text())
    return c


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("mg/dL", "mg/dL"),
        ("mg/dl", "mg/dL"),
        ("MG/DL", "mg/dL"),
        ("mmol/L", "mmol/L"),
        ("mmol/l", "mmol/L"),
        ("10*3/uL", "10*3/uL"),
        ("10^3/µL", "10*3/uL"),
        ("K/uL", "10*3/uL"),
        ("%", "%"),
        ("mm[Hg]", "mm[Hg]"),
        ("mmHg", "mm[Hg]"),
        ("kg", "kg"),
        ("[lb_av]", "[lb_av]"),
        ("lbs", "[lb_av]"),
        ("cm", "cm"),
        ("[in_i]", "[in_i]"),
        ("kg/m2", "kg/m2"),
        ("kg/m²", "kg/m2"),
        ("mL/min/{1.73_m2}", "mL/min/{1.73_m2}"),
        ("mL/min/1.73 m2", "mL/min/{1.73_m2}"),
        ("g/dL", "g/dL"),
        ("/min", "/min"),
        ("bpm", "/min"),
        ("mIU/L", "mIU/L"),
        ("uIU/mL", "mIU/L"),
        ("µIU/mL", "mIU/L"),
        ("Cel", "Cel"),
        ("°C", "Cel"),
        ("[degF]", "[degF]"),
        ("°F", "[degF]"),
        ("{score}", "{score}"),
    ],
)
def test_canonical_spellings(raw: str, canon: str) -> None:
    assert canonical_unit(raw) == canon


@pytest.mark.parametrize(
    ("value", "src", "dst", "code", "expected"),
    [
        (180.16, "mg/dL", "mmol/L", "2345-7", 10.0),
        (100.0, "mg/dL", "mmol/L", "2339-0", 100 / 18.016),
        (7.0, "mmol/L", "mg/dL", "1558-6", 7.0 * 18.016),
        (200.0, "mg/dL", "mmol/L", "2093-3", 200 / 38.67),
        (3.0, "mmol/L", "mg/dL", "18262-6", 3.0 * 38.67),
        (40.0, "mg/dL", "mmol/L", "2085-9", 40 / 38.67),
        (150.0, "mg/dL", "mmol/L", "2571-8", 150 / 88.57),
        (1.0, "mg/dL", "umol/L", "2160-0", 88.4),
        (7.0, "%", "mmol/mol", "4548-4", (7.0 - 2.15) * 10.929),
        (48.0, "mmol/mol", "%", "4548-4", 48.0 / 10.929 + 2.15),
        (220.0, "[lb_av]", "kg", None, 220 * 0.45359237),
        (70.0, "[in_i]", "cm", None, 177.8),
        (98.6, "[degF]", "Cel", None, 37.0),
        (-40.0, "Cel", "[degF]", None, -40.0),
        (2.5, "uIU/mL", "mIU/L", "3016-3", 2.5),
        (5.0, "10*9/L", "10*3/uL", "6690-2", 5.0),
        (140.0, "meq/L", "mmol/L", "2951-2", 140.0),
        (52.0, "mL/min", "mL/min/{1.73_m2}", "33914-3", 52.0),
    ],
)
def test_conversions(value: float, src: str, dst: str, code: str | None, expected: float) -> None:
    assert convert(value, src, dst, code) == pytest.approx(expected, rel=1e-4)


def test_normalize_returns_canonical_unit_of_the_code() -> None:
    assert normalize(5.5, "mmol/L", "2345-7") == (pytest.approx(5.5 * 18.016, rel=1e-4), "mg/dL")
    assert normalize(60, "kg", "29463-7") == (60.0, "kg")
    # Blood-pressure components often come without a unit; mm[Hg] is the only one in use.
    assert normalize(120, None, "8480-6") == (120.0, "mm[Hg]")
    # A code without an analyte entry keeps its own unit, spelled canonically.
    assert normalize(3, "mg/dl", "99999-9") == (3.0, "mg/dL")


def test_unknown_unit_raises_unit_error_naming_unit_and_code() -> None:
    with pytest.raises(UnitError) as exc:
        normalize(5.0, "furlongs", "2345-7")
    assert "furlongs" in str(exc.value) and "2345-7" in str(exc.value)
    assert isinstance(exc.value, RecordsError) and isinstance(exc.value, ValueError)
    with pytest.raises(UnitError, match="2345-7"):
        normalize(5.0, None, "2345-7")  # glucose has no implied unit


def test_inconvertible_units_raise() -> None:
    with pytest.raises(UnitError, match="718-7"):
        convert(1.0, "mg/dL", "mmol/L", "718-7")  # no molar mass for hemoglobin here
    with pytest.raises(UnitError):
        convert(1.0, "kg", "cm")
    with pytest.raises(UnitError):
        convert(140.0, "meq/L", "mmol/L", "17861-6")  # calcium is divalent: mEq/L != mmol/L


@given(st.floats(min_value=1e-3, max_value=1e4, allow_nan=False))
def test_glucose_and_lipid_round_trips(v: float) -> None:
    for code in ("2345-7", "2093-3", "2571-8"):
        back = convert(convert(v, "mg/dL", "mmol/L", code), "mmol/L", "mg/dL", code)
        assert back == pytest.approx(v, rel=1e-9)
    back = convert(convert(v, "mg/dL", "umol/L", "2160-0"), "umol/L", "mg/dL", "2160-0")
    assert back == pytest.approx(v, rel=1e-9)


@given(st.floats(min_value=-100, max_value=300, allow_nan=False))
def test_temperature_and_body_round_trips(v: float) -> None:
    assert convert(convert(v, "[degF]", "Cel"), "Cel", "[degF]") == pytest.approx(v, rel=1e-10, abs=1e-8)
    assert convert(convert(abs(v), "[lb_av]", "kg"), "kg", "[lb_av]") == pytest.approx(
        abs(v), rel=1e-10, abs=1e-9
    )
    assert convert(convert(abs(v), "[in_i]", "cm"), "cm", "[in_i]") == pytest.approx(
        abs(v), rel=1e-10, abs=1e-9
    )


@given(st.floats(min_value=3.0, max_value=20.0, allow_nan=False))
def test_hba1c_round_trip_and_monotone(v: float) -> None:
    ifcc = convert(v, "%", "mmol/mol", "4548-4")
    assert convert(ifcc, "mmol/mol", "%", "4548-4") == pytest.approx(v, rel=1e-9)
    assert convert(v + 0.1, "%", "mmol/mol", "4548-4") > ifcc


def test_every_range_row_has_a_source_and_a_known_unit() -> None:
    rows = reference_ranges()
    assert len(rows) > 60
    for r in rows:
        assert r.source.strip(), r.code
        assert canonical_unit(r.unit) == r.unit
        if r.critical_low is not None or r.critical_high is not None:
            assert r.critical_source.strip(), r.code
        if r.low is not None and r.high is not None:
            assert r.low < r.high


def test_required_codes_are_covered() -> None:
    for code in [
        "2093-3", "2089-1", "18262-6", "2085-9", "2571-8", "4548-4", "2345-7", "1558-6", "2160-0",
        "33914-3", "62238-1", "98979-8", "718-7", "4544-3", "6690-2", "777-3", "789-8", "787-2",
        "3016-3", "2951-2", "2823-3", "8480-6", "8462-4", "8867-4", "9279-1", "8310-5", "39156-5",
        "2708-6", "59408-5",
    ]:  # fmt: skip
        assert reference_range(code, "female", 40) is not None, code
        assert reference_range(code, "male", 40) is not None, code


def test_sex_and_age_specific_ranges() -> None:
    male, female = reference_range("718-7", "male", 40), reference_range("718-7", "female", 40)
    assert male is not None and female is not None and male.low != female.low
    assert reference_range("718-7", None, 40) is None  # no guessing the sex
    assert reference_range("39156-5", None, 10) is None  # adult BMI categories start at 20
    child = reference_range("2093-3", None, 10)
    adult = reference_range("2093-3", None, 40)
    assert child is not None and adult is not None and child.high == 170 and adult.high == 200


@pytest.mark.parametrize(
    ("code", "value", "unit", "sex", "expected"),
    [
        ("2951-2", 135.0, "mmol/L", None, "normal"),  # inclusive lower bound
        ("2951-2", 134.9, "mmol/L", None, "low"),
        ("2951-2", 145.0, "mmol/L", None, "normal"),  # inclusive upper bound
        ("2951-2", 145.1, "mmol/L", None, "high"),
        ("2951-2", 120.0, "mmol/L", None, "low"),  # at the critical limit: not beyond it
        ("2951-2", 119.9, "mmol/L", None, "critical"),
        ("2951-2", 160.1, "mEq/L", None, "critical"),
        ("2093-3", 199.9, "mg/dL", None, "normal"),
        ("2093-3", 200.0, "mg/dL", None, "high"),  # "below 200 is desirable": 200 is not
        ("2093-3", 200 / 38.67, "mmol/L", None, "high"),
        ("4548-4", 5.69, "%", None, "normal"),
        ("4548-4", 5.7, "%", None, "high"),
        ("4548-4", 39.0, "mmol/mol", None, "high"),
        ("33914-3", 60.0, "mL/min/{1.73_m2}", None, "normal"),
        ("33914-3", 59.9, "mL/min/{1.73_m2}", None, "low"),
        ("33914-3", 14.9, "mL/min/{1.73_m2}", None, "critical"),
        ("718-7", 12.5, "g/dL", "female", "normal"),
        ("718-7", 12.5, "g/dL", "male", "low"),
        ("718-7", 6.9, "g/dL", "female", "critical"),
        ("8310-5", 100.4, "[degF]", None, "high"),  # 38.0 Cel exactly
        ("8310-5", 100.3, "[degF]", None, "normal"),
        ("8480-6", 119.0, "mm[Hg]", None, "normal"),
        ("8480-6", 120.0, "mm[Hg]", None, "high"),
        ("8480-6", 181.0, "mm[Hg]", None, "critical"),
        ("2708-6", 87.9, "%", None, "critical"),
        ("2085-9", 45.0, "mg/dL", "male", "normal"),
        ("2085-9", 45.0, "mg/dL", "female", "low"),
    ],
)
def test_flags_at_boundaries(code: str, value: float, unit: str, sex: str | None, expected: str) -> None:
    assert flag(code, value, unit, sex) == expected


def test_flag_without_range_is_none_and_unknown_unit_raises() -> None:
    assert flag("72514-3", 3, "{score}") is None
    with pytest.raises(UnitError):
        flag("2345-7", 5.0, "furlongs")


def test_lab_results_normalises_flags_and_keeps_unconverted(con: duckdb.DuckDBPyConnection) -> None:
    df = lab_results(con)
    assert (
        len(df) == con.execute("SELECT count(*) FROM observations WHERE value_num IS NOT NULL").fetchone()[0]
    )
    ldl = df[df.resource_id == "o206"].iloc[0]
    assert ldl.unit == "mmol/L" and ldl.unit_norm == "mg/dL"
    assert ldl.value_norm == pytest.approx(5.05 * 38.67) and ldl.flag == "high"
    assert "ATP III" in ldl.range_source
    weight = df[df.resource_id == "o108"].iloc[0]
    assert weight.value_norm == pytest.approx(190 * 0.45359237) and weight.unit_norm == "kg"
    temp = df[df.resource_id == "o308"].iloc[0]
    assert temp.value_norm == pytest.approx(38.0) and temp.flag == "high"
    bad = df[df.resource_id == "o309"].iloc[0]  # unit "furlongs": kept, reported, not converted
    assert math.isnan(bad.value_norm) and "furlongs" in bad.unit_error and pd.isna(bad.flag)
    bp = df[(df.resource_id == "o105") & (df.code == "8462-4")].iloc[0]  # no unit: mm[Hg] implied
    assert bp.value_norm == 88 and bp.unit_norm == "mm[Hg]" and bp.panel_code == "85354-9"
    assert bp.display == "Diastolic blood pressure"
    hgb = df[df.resource_id == "o307"].iloc[0]
    assert hgb.flag == "low" and hgb.sex == "female" and 30 < hgb.age < 31
    child_hr = df[df.resource_id == "o502"].iloc[0]
    assert pd.isna(child_hr.flag)  # adult heart-rate range does not apply at age 10


def test_lab_results_filters(con: duckdb.DuckDBPyConnection) -> None:
    df = lab_results(con, "p2", ["33914-3"])
    assert list(df.resource_id) == ["o201", "o202", "o203"]
    assert set(lab_results(con, ["p1", "p3"]).patient_id) == {"p1", "p3"}
    assert lab_results(con, "nobody").empty


def test_laboratory_reported_range_wins(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("UPDATE observations SET ref_low = 3.3, ref_high = 5.5 WHERE resource_id = 'o206'")
    row = lab_results(con, "p2", ["18262-6"]).iloc[0]  # 5.05 mmol/L within the lab's 3.3-5.5 mmol/L
    assert row.flag == "normal" and row.range_source == "reference range reported with the result"
    assert row.ref_high == pytest.approx(5.5 * 38.67)


def test_trend_of_known_series() -> None:

    dates = pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01"])
    stats = trend_of(pd.Series(dates), pd.Series([10.0, 12.0, 14.0]))
    assert stats["slope_per_year"] == pytest.approx(2.0, rel=2e-3)  # leap year: 366 days
    assert stats["last_value"] == 14.0 and stats["previous_value"] == 12.0
    assert stats["last_change"] == 2.0 and stats["last_change_pct"] == pytest.approx(100 / 6)
    assert stats["n"] == 3 and stats["last_change_date"] == pd.Timestamp("2022-01-01")
    one = trend_of(pd.Series(dates[:1]), pd.Series([5.0]))
    assert one["slope_per_year"] is None and one["last_change"] is None and one["n"] == 1


def test_trends_per_patient(con: duckdb.DuckDBPyConnection) -> None:
    t = trends(con, "p2").set_index("code")
    egfr = t.loc["33914-3"]
    assert egfr.n == 3 and egfr.last_value == 44 and egfr.previous_value == 52  # mL/min row included
    assert egfr.last_change == -8 and egfr.last_change_pct == pytest.approx(-8 / 52 * 100)
    assert egfr.slope_per_year < -20 and egfr.last_flag == "low"
    w = trends(con, "p1", ["29463-7"]).iloc[0]  # 190 lb then 88 kg: one series in kg
    assert w.unit == "kg" and w.n == 2 and w.last_change == pytest.approx(88 - 190 * 0.45359237)
    t3 = trends(con, "p3").set_index("code")
    assert t3.loc["2345-7"].unconverted == 1 and t3.loc["2345-7"].n == 0


def test_trends_include_wellness_measurements(con: duckdb.DuckDBPyConnection) -> None:
    rows = [
        ("w1", "weight", 87.0, "kg", "2020-03-01 07:00", "apple_health", None),
        ("w2", "weight", 87.0, "kg", "2020-03-01 07:00", "myfitnesspal", "w1"),  # duplicate: skipped
        ("w3", "weight", 88.0, "kg", "2020-06-15 09:06", "fhir", None),  # already an observation
        ("s1", "steps", 4000.0, "count", "2020-03-01 00:00", "apple_health", None),
        ("s2", "steps", 6000.0, "count", "2020-03-02 00:00", "apple_health", None),
    ]
    for rid, measure, value, unit, start, source, dup in rows:
        con.execute(
            "INSERT INTO measurements (patient_id, resource_id, measure, value, unit, start, source, duplicate_of) "
            "VALUES ('p1', ?, ?, ?, ?, ?, ?, ?)",
            [rid, measure, value, unit, start, source, dup],
        )
    t = trends(con, "p1").set_index("code")
    weight = t.loc["29463-7"]  # clinic 190 lb, home 87 kg, clinic 88 kg: one series in kg
    assert (
        weight.n == 3 and weight.unit == "kg" and weight.previous_value == 87.0 and weight.last_value == 88.0
    )
    steps = t.loc["41950-7"]  # steps have a LOINC twin too
    assert steps.n == 2 and steps.last_change == 2000.0 and steps.last_change_pct == pytest.approx(50.0)
    assert trends(con, "p1", include_wellness=False).set_index("code").loc["29463-7"].n == 2
    only = trends(con, "p1", ["steps"])  # a measure name selects too
    assert list(only.code) == ["41950-7"] and list(only.display) == ["steps"]
