"""Wellness imports: Apple Health (``export.xml`` / ``export.zip``) and MyFitnessPal CSV exports.

Rows land in ``measurements`` under the measure names FHIR vitals use too
(:mod:`workbench.cohort.measures`), so weight from Apple's BodyMass, MyFitnessPal and LOINC
29463-7 is one measure in kg. Workouts, activity summaries and meals have their own tables.

Safety: the XML is parsed by ``defusedxml`` with ``forbid_entities`` and ``forbid_external``;
the inline DTD of older exports (element and attribute declarations only) is tolerated, any
entity declaration (billion laughs) or external reference is refused. Parsing is streaming
(``iterparse``; elements are dropped as soon as they are read), so memory stays flat for
exports of any size.

Unit of work: one wellness file is one transaction (rows inserted in chunks inside it). A
record with an unknown unit or a malformed value is skipped and reported by its ordinal and
type (never its values or dates); a truncated or malformed file rolls the whole file back.

Resource ids are stable hashes of the record's content, so re-importing a newer export adds
only the records that are new. Device names are reduced to the device model ("Apple Watch"),
because Apple's ``sourceName`` often carries the owner's name.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import duckdb
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from workbench.cohort.fhir_import import Batch, FileReport, Flattener, TxnBuffer
from workbench.cohort.measures import to_canonical
from workbench.errors import RecordFormatError, UnitError

CHUNK_ROWS = 5000

#: Apple HealthKit type identifier -> shared measure name.
APPLE_MEASURES: dict[str, str] = {
    "HKQuantityTypeIdentifierBodyMass": "weight",
    "HKQuantityTypeIdentifierHeight": "height",
    "HKQuantityTypeIdentifierBodyMassIndex": "bmi",
    "HKQuantityTypeIdentifierBodyFatPercentage": "body_fat",
    "HKQuantityTypeIdentifierWaistCircumference": "waist",
    "HKQuantityTypeIdentifierHeartRate": "heart_rate",
    "HKQuantityTypeIdentifierRestingHeartRate": "resting_heart_rate",
    "HKQuantityTypeIdentifierRespiratoryRate": "respiratory_rate",
    "HKQuantityTypeIdentifierBodyTemperature": "body_temperature",
    "HKQuantityTypeIdentifierOxygenSaturation": "oxygen_saturation",
    "HKQuantityTypeIdentifierBloodPressureSystolic": "blood_pressure_systolic",
    "HKQuantityTypeIdentifierBloodPressureDiastolic": "blood_pressure_diastolic",
    "HKQuantityTypeIdentifierBloodGlucose": "blood_glucose",
    "HKQuantityTypeIdentifierStepCount": "steps",
    "HKQuantityTypeIdentifierActiveEnergyBurned": "active_energy",
    "HKQuantityTypeIdentifierBasalEnergyBurned": "basal_energy",
    "HKQuantityTypeIdentifierDistanceWalkingRunning": "distance",
    "HKQuantityTypeIdentifierFlightsClimbed": "flights_climbed",
    "HKQuantityTypeIdentifierAppleExerciseTime": "exercise_time",
    "HKQuantityTypeIdentifierAppleStandTime": "stand_time",
    "HKQuantityTypeIdentifierDietaryEnergyConsumed": "dietary_energy",
    "HKCategoryTypeIdentifierSleepAnalysis": "sleep",
}

#: Sleep categories that count as asleep (the rest, e.g. InBed or Awake, become ``in_bed``/skipped).
_ASLEEP = ("Asleep",)

_MEAS_NAMES = [
    "patient_id",
    "resource_id",
    "measure",
    "value",
    "unit",
    "start",
    "end",
    "source",
    "device",
    "original_value",
    "original_unit",
    "type_identifier",
]
_WORKOUT_NAMES = [
    "patient_id",
    "resource_id",
    "activity",
    "start",
    "end",
    "duration_min",
    "distance_km",
    "energy_kcal",
    "source",
    "device",
]
_SUMMARY_NAMES = [
    "patient_id",
    "resource_id",
    "date",
    "active_energy_kcal",
    "active_energy_goal_kcal",
    "exercise_min",
    "exercise_goal_min",
    "stand_hours",
    "stand_goal_hours",
    "source",
]


def stable_id(*parts: Any) -> str:
    """A content hash used as ``resource_id`` for wellness rows (same record -> same id)."""
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:24]


def parse_apple_datetime(s: str | None) -> datetime | None:
    """``2024-01-01 01:01:36 +0200`` -> naive UTC datetime."""
    if not s:
        return None
    dt = datetime.strptime(s, "%Y-%m-%d %H:%M:%S %z")
    return dt.astimezone(UTC).replace(tzinfo=None)


def device_model(device: str | None, source_name: str | None) -> str | None:
    """The device model only (``Apple Watch``); ``sourceName`` can hold the owner's name, so it is not kept."""
    if device:
        m = re.search(r"\bname:([^,>]+)", device)
        if m:
            return m.group(1).strip()
    text = (source_name or "").lower()
    for model in ("Apple Watch", "iPhone", "iPad"):
        if model.lower() in text:
            return model
    return "other" if source_name else None


# --------------------------------------------------------------------------- Apple Health


def _open_export(path: Path) -> tuple[IO[bytes], zipfile.ZipFile | None]:
    if zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        names = [n for n in zf.namelist() if n.endswith("export.xml") and not n.startswith("__MACOSX")]
        if not names:
            zf.close()
            raise RecordFormatError(f"{path}: zip holds no apple_health_export/export.xml")
        return zf.open(sorted(names, key=len)[0]), zf
    return open(path, "rb"), None


def import_apple_health(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    report: FileReport,
    *,
    import_id: str,
    flattener: Flattener,
    buffer: TxnBuffer,
    strict: bool = False,
    person: str = "self",
) -> None:
    """Import an Apple Health export (xml or zip) for ``person`` in one transaction."""
    buffer.flush()
    fh, zf = _open_export(path)
    con.execute("BEGIN TRANSACTION")
    ordinal = 0
    try:
        batch = Batch()
        for ordinal, (tag, attrs, children) in enumerate(_apple_elements(fh), start=1):
            try:
                _apple_row(tag, attrs, children, person, batch, report)
            except (ValueError, UnitError) as exc:
                kind = attrs.get("type") or attrs.get("workoutActivityType") or tag
                problem = RecordFormatError(f"{report.file}: {tag} #{ordinal} ({kind}): {exc}")
                if strict:
                    raise problem from None
                report.add_error(problem)
            if batch.n_rows >= CHUNK_ROWS:
                buffer.add(batch, report)
                buffer.write_pending()
                batch = Batch()
        buffer.add(batch, report)
        buffer.write_pending()
        con.execute("COMMIT")
    except (SyntaxError, DefusedXmlException, EOFError, zipfile.BadZipFile, OSError) as exc:
        # xml.etree.ElementTree.ParseError is a SyntaxError
        con.execute("ROLLBACK")
        _reset(report)
        what = (
            "refused unsafe XML (entities or external references)"
            if isinstance(exc, DefusedXmlException)
            else "malformed or truncated XML"
        )
        raise RecordFormatError(
            f"{report.file}: {what} after element #{ordinal} ({type(exc).__name__}); nothing from it was stored"
        ) from None
    except BaseException:
        con.execute("ROLLBACK")
        _reset(report)
        raise
    finally:
        fh.close()
        if zf is not None:
            zf.close()
    if report.errors:
        report.status = "partial"


def _reset(report: FileReport) -> None:
    report.resources.clear()
    report.rows.clear()


def _apple_elements(fh: IO[bytes]) -> Iterator[tuple[str, dict[str, str], list[tuple[str, dict[str, str]]]]]:
    """Top-level Record/Workout/ActivitySummary elements, as (tag, attributes, children), streamed."""
    depth = 0
    root = None
    in_correlation = 0
    for event, elem in iterparse(
        fh, events=("start", "end"), forbid_dtd=False, forbid_entities=True, forbid_external=True
    ):
        if event == "start":
            depth += 1
            if root is None:
                root = elem
                if elem.tag != "HealthData":
                    raise SyntaxError(f"root element is {elem.tag!r}, expected HealthData")
            if elem.tag == "Correlation":
                in_correlation += 1
            continue
        depth -= 1
        tag = elem.tag
        if tag == "Correlation":
            in_correlation -= 1
            # its Records also appear at top level; count the correlation itself as not stored
            yield tag, dict(elem.attrib), []
            if root is not None:
                root.clear()
        elif depth == 1 and tag in ("Record", "Workout", "ActivitySummary") and not in_correlation:
            children = [(c.tag, dict(c.attrib)) for c in elem]
            yield tag, dict(elem.attrib), children
            if root is not None:
                root.clear()  # drop what was read: memory stays flat
        elif depth == 1 and root is not None:
            root.clear()


def _num(s: str | None) -> float | None:
    if s is None or s == "":
        return None
    return float(s)


def _apple_row(
    tag: str,
    a: dict[str, str],
    children: list[tuple[str, dict[str, str]]],
    person: str,
    batch: Batch,
    report: FileReport,
) -> None:
    if tag == "Record":
        hk = a.get("type", "")
        measure = APPLE_MEASURES.get(hk)
        if measure is None:
            report.unknown_types[hk or "Record"] += 1
            return
        start = parse_apple_datetime(a.get("startDate"))
        end = parse_apple_datetime(a.get("endDate"))
        if start is None:
            raise ValueError("no startDate")
        raw = a.get("value")
        unit = a.get("unit")
        if measure == "sleep":
            if end is None:
                raise ValueError("sleep record without endDate")
            category = raw or ""
            if not any(k in category for k in _ASLEEP):
                measure = "in_bed" if "InBed" in category else ""
            if not measure:
                report.unknown_types[f"{hk}:{category.removeprefix('HKCategoryValueSleepAnalysis')}"] += 1
                return
            orig = (end - start).total_seconds() / 60.0
            value, canon, unit = orig, "min", "min"
        else:
            orig_v = _num(raw)
            if orig_v is None:
                raise ValueError("no value")
            orig = orig_v
            value, canon = to_canonical(measure, orig, unit)
        rid = stable_id(
            "apple", person, hk, a.get("startDate"), a.get("endDate"), raw, unit, a.get("sourceName")
        )
        row = [
            person,
            rid,
            measure,
            value,
            canon,
            start,
            end,
            "apple_health",
            device_model(a.get("device"), a.get("sourceName")),
            orig,
            unit,
            hk,
        ]
        batch.add("measurements", _MEAS_NAMES, [row])
        batch.keys.append(("measurements", rid, "apple_health", person))
    elif tag == "Workout":
        start = parse_apple_datetime(a.get("startDate"))
        end = parse_apple_datetime(a.get("endDate"))
        if start is None:
            raise ValueError("no startDate")
        duration = _num(a.get("duration"))
        if duration is not None:
            duration, _ = to_canonical("exercise_time", duration, a.get("durationUnit") or "min")
        distance = _num(a.get("totalDistance"))
        energy = _num(a.get("totalEnergyBurned"))
        dist_unit, energy_unit = a.get("totalDistanceUnit"), a.get("totalEnergyBurnedUnit")
        for ctag, c in children:  # iOS 16+ moved totals into WorkoutStatistics children
            if ctag != "WorkoutStatistics":
                continue
            if distance is None and c.get("type", "").startswith("HKQuantityTypeIdentifierDistance"):
                distance, dist_unit = _num(c.get("sum")), c.get("unit")
            if energy is None and c.get("type") == "HKQuantityTypeIdentifierActiveEnergyBurned":
                energy, energy_unit = _num(c.get("sum")), c.get("unit")
        if distance is not None:
            distance, _ = to_canonical("distance", distance, dist_unit or "km")
        if energy is not None:
            energy, _ = to_canonical("active_energy", energy, energy_unit or "kcal")
        activity = a.get("workoutActivityType", "").removeprefix("HKWorkoutActivityType") or None
        rid = stable_id(
            "apple-workout",
            person,
            a.get("workoutActivityType"),
            a.get("startDate"),
            a.get("endDate"),
            a.get("sourceName"),
        )
        row = [
            person,
            rid,
            activity,
            start,
            end,
            duration,
            distance,
            energy,
            "apple_health",
            device_model(a.get("device"), a.get("sourceName")),
        ]
        batch.add("workouts", _WORKOUT_NAMES, [row])
        batch.keys.append(("workouts", rid, "apple_health", person))
    elif tag == "ActivitySummary":
        day_s = a.get("dateComponents")
        if not day_s:
            raise ValueError("no dateComponents")
        day = date.fromisoformat(day_s)
        energy = _num(a.get("activeEnergyBurned"))
        goal = _num(a.get("activeEnergyBurnedGoal"))
        unit = a.get("activeEnergyBurnedUnit") or "kcal"
        if energy is not None:
            energy, _ = to_canonical("active_energy", energy, unit)
        if goal is not None:
            goal, _ = to_canonical("active_energy", goal, unit)
        rid = stable_id("apple-activity", person, day_s)
        row = [
            person,
            rid,
            day,
            energy,
            goal,
            _num(a.get("appleExerciseTime")),
            _num(a.get("appleExerciseTimeGoal")),
            _num(a.get("appleStandHours")),
            _num(a.get("appleStandHoursGoal")),
            "apple_health",
        ]
        batch.add("activity_summaries", _SUMMARY_NAMES, [row])
        batch.keys.append(("activity_summaries", rid, "apple_health", person))
    elif tag == "Correlation":
        report.unknown_types[f"Correlation:{a.get('type', '')}"] += 1


# --------------------------------------------------------------------------- MyFitnessPal

_NUTRITION_COLUMNS: dict[str, str] = {
    "calories": "calories",
    "fat (g)": "fat_g",
    "saturated fat": "saturated_fat_g",
    "polyunsaturated fat": "polyunsaturated_fat_g",
    "monounsaturated fat": "monounsaturated_fat_g",
    "trans fat": "trans_fat_g",
    "cholesterol": "cholesterol_mg",
    "sodium (mg)": "sodium_mg",
    "potassium": "potassium_mg",
    "carbohydrates (g)": "carbohydrates_g",
    "fiber": "fiber_g",
    "sugar": "sugar_g",
    "protein (g)": "protein_g",
    "vitamin a": "vitamin_a_pct",
    "vitamin c": "vitamin_c_pct",
    "calcium": "calcium_pct",
    "iron": "iron_pct",
}

#: Measurement-Summary columns -> (measure, unit when the header names none).
_MFP_MEASURES: dict[str, tuple[str, str]] = {
    "weight": ("weight", "kg"),
    "body fat": ("body_fat", "%"),
    "body fat %": ("body_fat", "%"),
    "waist": ("waist", "cm"),
    "steps": ("steps", "count"),
}

_DATE_FORMATS = (
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d", False),
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "%m/%d/%Y", False),
    (re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$"), "%d.%m.%Y", True),
)


def parse_mfp_date(s: str) -> tuple[date, bool]:
    """Parse YYYY-MM-DD, MM/DD/YYYY (US) or DD.MM.YYYY; also say whether the format implies decimal commas."""
    s = s.strip()
    for rx, fmt, comma in _DATE_FORMATS:
        if rx.match(s):
            return datetime.strptime(s, fmt).date(), comma
    raise ValueError(f"unrecognised date format (use YYYY-MM-DD, MM/DD/YYYY or DD.MM.YYYY): {len(s)} chars")


def parse_number(s: str | None, *, decimal_comma: bool) -> float | None:
    """A number written with a decimal point or a decimal comma (thousands separators dropped)."""
    if s is None:
        return None
    s = s.strip().replace("\u00a0", "").replace(" ", "")
    if not s or s in ("-", "--"):
        return None
    if decimal_comma:
        s = s.replace(".", "").replace(",", ".")
    elif "," in s and "." not in s and re.fullmatch(r"-?\d+,\d{1,2}", s):
        s = s.replace(",", ".")  # "72,5" in a point-decimal file: a lone decimal comma
    else:
        s = s.replace(",", "")
    return float(s)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], str]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        import gzip

        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")  # Excel on Windows re-saves exports in the ANSI code page
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    if not rows:
        raise RecordFormatError(f"{path}: empty CSV")
    return [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)], delim


def import_mfp(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    report: FileReport,
    *,
    import_id: str,
    flattener: Flattener,
    buffer: TxnBuffer,
    strict: bool = False,
    person: str = "self",
) -> None:
    """Import a MyFitnessPal Nutrition-, Exercise- or Measurement-Summary CSV for ``person``."""
    header, rows, delim = _read_csv(path)
    keys = [h.lower() for h in header]
    if not keys or keys[0] != "date":
        raise RecordFormatError(f"{report.file}: not a MyFitnessPal export (first column is not Date)")
    decimal_comma = delim == ";"  # semicolon-separated exports come from decimal-comma locales
    batch = Batch()
    for i, r in enumerate(rows, start=2):
        rec = dict(zip(keys, r))
        try:
            day, comma_fmt = parse_mfp_date(rec.get("date", ""))
            dc = decimal_comma or comma_fmt
            if report.kind == "mfp_nutrition":
                _mfp_nutrition(rec, day, dc, person, batch)
            elif report.kind == "mfp_exercise":
                _mfp_exercise(rec, day, dc, person, batch)
            else:
                _mfp_measurement(rec, header, day, dc, person, batch, report)
        except (ValueError, UnitError) as exc:
            problem = RecordFormatError(f"{report.file} line {i}: {exc}")
            if strict:
                raise problem from None
            report.add_error(problem)
    buffer.flush()
    con.execute("BEGIN TRANSACTION")
    try:
        buffer.add(batch, report)
        buffer.write_pending()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        _reset(report)
        raise
    if report.errors:
        report.status = "partial"


def _mfp_nutrition(rec: dict[str, str], day: date, dc: bool, person: str, batch: Batch) -> None:
    meal = (rec.get("meal") or "").strip() or None
    values = {col: parse_number(rec.get(k), decimal_comma=dc) for k, col in _NUTRITION_COLUMNS.items()}
    note = (rec.get("note") or "").strip() or None
    rid = stable_id("mfp-meal", person, day.isoformat(), meal, *values.values())
    names = ["patient_id", "resource_id", "date", "meal", *values, "note", "source"]
    batch.add("nutrition", names, [[person, rid, day, meal, *values.values(), note, "myfitnesspal"]])
    batch.keys.append(("nutrition", rid, "myfitnesspal", person))


def _mfp_exercise(rec: dict[str, str], day: date, dc: bool, person: str, batch: Batch) -> None:
    activity = (rec.get("exercise") or "").strip() or None
    minutes = parse_number(rec.get("exercise minutes"), decimal_comma=dc)
    energy = parse_number(rec.get("exercise calories"), decimal_comma=dc)
    start = datetime(day.year, day.month, day.day)
    end = start + timedelta(minutes=minutes) if minutes else start
    rid = stable_id("mfp-exercise", person, day.isoformat(), activity, minutes, energy)
    row = [person, rid, activity, start, end, minutes, None, energy, "myfitnesspal", None]
    batch.add("workouts", _WORKOUT_NAMES, [row])
    batch.keys.append(("workouts", rid, "myfitnesspal", person))


def _mfp_measurement(
    rec: dict[str, str], header: list[str], day: date, dc: bool, person: str, batch: Batch, report: FileReport
) -> None:
    start = datetime(day.year, day.month, day.day)
    for h in header[1:]:
        m = re.match(r"^\s*(.*?)\s*(?:\((.*?)\))?\s*$", h)
        name, unit_in_header = (m.group(1).lower(), m.group(2)) if m else (h.lower(), None)
        spec = _MFP_MEASURES.get(name)
        raw = rec.get(h.lower())
        if spec is None:
            if raw and raw.strip():
                report.unknown_types[f"myfitnesspal:{h}"] += 1
            continue
        value = parse_number(raw, decimal_comma=dc)
        if value is None:
            continue
        measure, default_unit = spec
        unit = unit_in_header or default_unit
        v, canon = to_canonical(measure, value, unit)
        rid = stable_id("mfp-measure", person, day.isoformat(), measure, value, unit)
        row = [
            person,
            rid,
            measure,
            v,
            canon,
            start,
            start,
            "myfitnesspal",
            None,
            value,
            unit,
            f"myfitnesspal:{h}",
        ]
        batch.add("measurements", _MEAS_NAMES, [row])
        batch.keys.append(("measurements", rid, "myfitnesspal", person))


# --------------------------------------------------------------------------- duplicates across sources

#: Lower wins: a reading from a clinical record outranks a phone's copy of it.
SOURCE_PRIORITY = {"fhir": 0, "apple_health": 1, "myfitnesspal": 2}


def mark_duplicates(
    con: duckdb.DuckDBPyConnection, *, tolerance_s: float = 300.0, rel_tolerance: float = 0.005
) -> int:
    """Set ``duplicate_of`` on measurements that repeat a reading from a higher-priority source.

    Same person, same measure, values equal after unit conversion (within ``rel_tolerance``,
    e.g. MyFitnessPal rounding pounds), and timestamps within ``tolerance_s`` seconds; a
    date-only reading (MyFitnessPal) matches a reading on the same day. Returns rows marked.
    """
    pri = "CASE {s} WHEN 'fhir' THEN 0 WHEN 'apple_health' THEN 1 WHEN 'myfitnesspal' THEN 2 ELSE 3 END"
    sql = f"""
        UPDATE measurements AS m SET duplicate_of = d.orig
        FROM (
            SELECT b.resource_id, b.measure,
                   arg_min(a.resource_id, {pri.format(s="a.source")} * 1e12 + abs(epoch(a.start) - epoch(b.start))) AS orig
            FROM measurements b JOIN measurements a
              ON a.patient_id = b.patient_id AND a.measure = b.measure AND a.source <> b.source
            WHERE {pri.format(s="a.source")} < {pri.format(s="b.source")}
              AND a.duplicate_of IS NULL AND b.duplicate_of IS NULL
              AND abs(a.value - b.value) <= greatest(1e-9, ? * abs(a.value))
              AND CASE WHEN b.source = 'myfitnesspal' OR a.source = 'myfitnesspal'
                       THEN CAST(a.start AS DATE) = CAST(b.start AS DATE)
                       ELSE abs(epoch(a.start) - epoch(b.start)) <= ? END
            GROUP BY b.resource_id, b.measure
        ) d
        WHERE m.resource_id = d.resource_id AND m.measure = d.measure
    """
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(sql, [rel_tolerance, tolerance_s])
        n = con.execute("SELECT count(*) FROM measurements WHERE duplicate_of IS NOT NULL").fetchone()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(n[0]) if n else 0


def daily_summary(con: duckdb.DuckDBPyConnection, patient_id: str) -> list[dict[str, Any]]:
    """Per day and measure: total (steps, energy, distance, minutes) or mean, duplicates left out."""
    rows = con.execute(
        """
        SELECT CAST(start AS DATE) AS day, measure,
               CASE WHEN measure IN ('steps', 'active_energy', 'basal_energy', 'distance', 'exercise_time',
                                     'stand_time', 'sleep', 'in_bed', 'flights_climbed', 'dietary_energy')
                    THEN sum(value) ELSE avg(value) END AS value,
               any_value(unit) AS unit, count(*) AS n
        FROM measurements WHERE patient_id = ? AND duplicate_of IS NULL
        GROUP BY 1, 2 ORDER BY day, measure
        """,
        [patient_id],
    ).fetchall()
    return [{"day": d, "measure": m, "value": v, "unit": u, "n": int(n)} for d, m, v, u, n in rows]
