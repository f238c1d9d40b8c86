"""Apple Health and MyFitnessPal imports: shared measures, units, duplicates, unsafe and broken XML."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from workbench.cohort.importer import import_paths, sniff
from workbench.cohort.wellness import daily_summary, parse_mfp_date, parse_number
from workbench.errors import RecordFormatError
from workbench.workspace import open_workspace

WELL = Path(__file__).parent / "fixtures" / "wellness"
ALX = WELL / "alxdrcirilo_apple-health-parser"
TDDA = WELL / "tdda_applehealthdata"


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_PASSPHRASE", "correct horse battery staple")


@pytest.fixture
def ws(tmp_path: Path):
    return open_workspace(tmp_path / "ws")


def _q(ws, sql: str, params: list | None = None) -> list[tuple]:
    con = ws.connect()
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_modern_export_and_zip_are_the_same_records(ws) -> None:
    assert sniff(ALX / "export.xml") == "apple_health"
    assert sniff(ALX / "export.zip") == "apple_health"
    first = import_paths(ws, [ALX / "export.xml"])
    assert not first.errors
    assert first.rows["measurements"] == 8
    measures = dict(_q(ws, "SELECT measure, count(*) FROM measurements GROUP BY 1"))
    assert measures == {
        "heart_rate": 2,
        "active_energy": 2,
        "exercise_time": 1,
        "stand_time": 1,
        "sleep": 1,
        "in_bed": 1,
    }
    # the zip holds the same export.xml: nothing new
    second = import_paths(ws, [ALX / "export.zip"])
    assert sum(second.rows.values()) == 0 and second.duplicates == 8
    # device model kept, owner's name (in sourceName) not
    devices = {r[0] for r in _q(ws, "SELECT DISTINCT device FROM measurements")}
    assert devices <= {"Apple Watch", "iPhone", "other"}
    assert not any("Alexandre" in str(d) for d in devices)
    hr = _q(ws, "SELECT value, unit, start FROM measurements WHERE measure = 'heart_rate' ORDER BY start")
    assert hr[0][0] == 74 and hr[0][1] == "/min"
    assert str(hr[0][2]) == "2023-12-31 23:01:36"  # +0200 stored as UTC


def test_old_export_with_inline_dtd_matches_golden_csv(ws) -> None:
    result = import_paths(ws, [TDDA / "export6s3sample.xml"])
    assert not result.errors
    steps = sorted(r[0] for r in _q(ws, "SELECT value FROM measurements WHERE measure = 'steps'"))
    with open(TDDA / "StepCount.csv", newline="") as fh:
        golden = sorted(float(r["value"]) for r in csv.DictReader(fh))
    assert steps == golden
    dist = sorted(r[0] for r in _q(ws, "SELECT original_value FROM measurements WHERE measure = 'distance'"))
    with open(TDDA / "DistanceWalkingRunning.csv", newline="") as fh:
        assert dist == sorted(float(r["value"]) for r in csv.DictReader(fh))
    w = _q(ws, "SELECT activity, duration_min, energy_kcal FROM workouts")
    assert w == [("Other", pytest.approx(31.73680251737436), pytest.approx(139.317))]
    s = _q(ws, "SELECT date, active_energy_kcal, stand_hours FROM activity_summaries ORDER BY date")
    assert [(str(d), e, h) for d, e, h in s] == [("2016-04-14", 700.698, 16), ("2016-04-15", 56.609, 2)]


def test_units_correlations_unknown_types(ws) -> None:
    result = import_paths(ws, [WELL / "synthetic_apple" / "export.xml"])
    # the record with unit "furlong" is reported by ordinal and type, and skipped
    assert len(result.errors) == 1
    msg = result.errors[0]["message"]
    assert "export.xml" in msg and "HKQuantityTypeIdentifierBodyMass" in msg and "furlong" in msg
    assert result.unknown_types["HKQuantityTypeIdentifierVO2Max"] == 1
    assert result.unknown_types["Correlation:HKCorrelationTypeIdentifierBloodPressure"] == 1
    weights = sorted(r[0] for r in _q(ws, "SELECT value FROM measurements WHERE measure = 'weight'"))
    assert weights == [pytest.approx(72.5), pytest.approx(160 * 0.45359237)]
    glucose = sorted(r[0] for r in _q(ws, "SELECT value FROM measurements WHERE measure = 'blood_glucose'"))
    assert glucose == [pytest.approx(99), pytest.approx(5.5 * 18.016)]
    # blood pressure counted once although the correlation repeats its records
    bp = _q(ws, "SELECT measure, value FROM measurements WHERE measure LIKE 'blood_pressure%' ORDER BY 1")
    assert bp == [("blood_pressure_diastolic", 82.0), ("blood_pressure_systolic", 128.0)]
    w = _q(ws, "SELECT activity, duration_min, distance_km, energy_kcal FROM workouts")
    assert w == [("Running", 30.0, pytest.approx(3.1 * 1.609344), 310.0)]


def test_myfitnesspal_formats_and_cross_source_duplicates(ws) -> None:
    mfp = WELL / "myfitnesspal"
    kinds = {p.name.split("-")[0]: sniff(p) for p in mfp.glob("*.csv")}
    assert kinds == {
        "Nutrition": "mfp_nutrition",
        "Exercise": "mfp_exercise",
        "Measurement": "mfp_measurement",
    }
    result = import_paths(ws, [WELL / "synthetic_apple" / "export.xml", mfp])
    assert [e for e in result.errors if "furlong" not in e["message"]] == []
    meals = _q(ws, "SELECT date, meal, calories, protein_g FROM nutrition ORDER BY date, calories")
    assert len(meals) == 5
    assert (str(meals[2][0]), meals[2][1], meals[2][2]) == ("2024-01-01", "Dinner", 1050.0)  # "1,050"
    ex = _q(
        ws,
        "SELECT activity, duration_min, energy_kcal, CAST(start AS DATE) FROM workouts WHERE source = 'myfitnesspal' ORDER BY 4, 1",
    )
    assert str(ex[0][3]) == "2024-01-01" and ex[0][1] == 45  # MM/DD/YYYY
    mw = _q(
        ws,
        "SELECT value, CAST(start AS DATE), duplicate_of FROM measurements WHERE source = 'myfitnesspal' AND measure = 'weight' ORDER BY 2",
    )
    assert [(v, str(d)) for v, d, _ in mw] == [
        (72.5, "2024-01-01"),
        (72.3, "2024-01-02"),
    ]  # DD.MM.YYYY, "72,5"
    apple_rid = _q(
        ws,
        "SELECT resource_id FROM measurements WHERE source = 'apple_health' AND measure = 'weight' AND value = 72.5",
    )[0][0]
    assert mw[0][2] == apple_rid  # same person, same day, same value -> duplicate of Apple's reading
    assert mw[1][2] is None
    con = ws.connect()
    try:
        rows = daily_summary(con, "self")
    finally:
        con.close()
    day = [r for r in rows if r["measure"] == "weight" and str(r["day"]) == "2024-01-01"]
    assert day[0]["n"] == 1 and day[0]["value"] == pytest.approx(72.5)  # not double counted
    from workbench.cohort.records import summary

    assert summary(ws)["measurement_duplicates"] == 1


def test_parsers_for_dates_and_numbers() -> None:
    assert str(parse_mfp_date("2024-03-04")[0]) == "2024-03-04"
    assert str(parse_mfp_date("03/04/2024")[0]) == "2024-03-04"
    assert parse_mfp_date("04.03.2024") == (parse_mfp_date("2024-03-04")[0], True)
    with pytest.raises(ValueError):
        parse_mfp_date("2024-02-30")
    assert parse_number("1.234,5", decimal_comma=True) == 1234.5
    assert parse_number("1,234", decimal_comma=False) == 1234
    assert parse_number("72,5", decimal_comma=False) == 72.5
    assert parse_number("", decimal_comma=False) is None


BOMB = """<?xml version="1.0"?>
<!DOCTYPE HealthData [
 <!ENTITY a "aaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<HealthData locale="en_US"><Record type="HKQuantityTypeIdentifierStepCount" unit="count" sourceName="&c;"
 startDate="2024-01-01 09:00:00 +0100" endDate="2024-01-01 10:00:00 +0100" value="5"/></HealthData>
"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE HealthData [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<HealthData locale="en_US"><Record type="HKQuantityTypeIdentifierStepCount" unit="count" sourceName="&x;"
 startDate="2024-01-01 09:00:00 +0100" endDate="2024-01-01 10:00:00 +0100" value="5"/></HealthData>
"""


@pytest.mark.parametrize("doc", [BOMB, EXTERNAL], ids=["entity-expansion", "external-entity"])
def test_unsafe_xml_is_refused(ws, tmp_path: Path, doc: str) -> None:
    bad = tmp_path / "export.xml"
    bad.write_text(doc)
    result = import_paths(ws, [bad])
    assert result.files[0].status == "failed"
    assert "unsafe XML" in result.errors[0]["message"] and "export.xml" in result.errors[0]["message"]
    assert _q(ws, "SELECT count(*) FROM measurements") == [(0,)]
    with pytest.raises(RecordFormatError):
        import_paths(ws, [bad], strict=True)


def test_truncated_xml_and_zip_roll_back_only_that_file(ws, tmp_path: Path) -> None:
    import_paths(ws, [TDDA / "export6s3sample.xml"])
    before = _q(ws, "SELECT count(*) FROM measurements")[0][0]
    text = (WELL / "synthetic_apple" / "export.xml").read_text()
    cut = tmp_path / "cut" / "export.xml"
    cut.parent.mkdir()
    cut.write_text(text[: text.index("<Workout")])  # records read, then the file ends
    result = import_paths(ws, [cut])
    assert result.files[0].status == "failed"
    assert "truncated" in result.errors[0]["message"]
    assert _q(ws, "SELECT count(*) FROM measurements")[0][0] == before  # nothing half-written
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("apple_health_export/export.xml", text)
    z.write_bytes(z.read_bytes()[:-60])  # lose the central directory
    result = import_paths(ws, [z])
    assert result.files[0].status == "failed"
    assert _q(ws, "SELECT count(*) FROM measurements")[0][0] == before


def test_identical_records_in_one_export_are_stored_once(ws, tmp_path: Path) -> None:
    rec = (
        '<Record type="HKQuantityTypeIdentifierStepCount" sourceName="Phone" unit="count" '
        'startDate="2024-01-01 09:00:00 +0100" endDate="2024-01-01 10:00:00 +0100" value="{v}"/>'
    )
    body = "".join([rec.format(v=100), rec.format(v=100), rec.format(v=250), rec.format(v=100)])
    f = tmp_path / "export.xml"
    f.write_text(f'<?xml version="1.0"?><HealthData locale="en_US">{body}</HealthData>')
    result = import_paths(ws, [f])
    assert result.rows["measurements"] == 2 and result.duplicates == 2
    assert sorted(r[0] for r in _q(ws, "SELECT value FROM measurements")) == [100.0, 250.0]
