"""HIPAA Safe Harbor de-identification of the records tables (docs/records-schema.md).

Which column of which table gets which treatment is data (:data:`TABLE_RULES`), read by
one engine (:func:`deidentified_table`). A column nobody listed is dropped unless its
name is in :data:`SAFE_COLUMNS`, it holds dates (shifted like every other date) or it is
an ``*_id`` reference (pseudonymised), so a column an importer adds later never leaks.

Rules (strings, so the spec reads as a table):

- ``keep``: unchanged.  ``drop``: removed.
- ``pseudonym:KIND``: keyed HMAC pseudonym (:func:`~workbench.cohort.deid.pseudonym.pseudonym`);
  ``pseudonyms:KIND`` does the same for each element of a list column.
- ``date``: shifted by the patient's offset, or reduced to the year.
- ``birth_date``: as ``date``, suppressed for patients aged 90 or more; adds ``age`` and ``age_band``.
- ``zip3``: first three digits of a US ZIP, ``000`` for the restricted prefixes; becomes ``zip3``.
- ``free_text``: through the free-text de-identifier with the patient's own identifiers.
- ``short_text``: coded values and instructions ("Never smoker", "Take 1 tablet"): the
  patient's own identifiers and pattern types (dates, phones, addresses, ...) are redacted,
  but not capitalised terms the NER model would mistake for names.

Identifiers such as phone, e-mail, SSN, MRN and licence numbers are dropped rather than
pseudonymised: Safe Harbor (45 CFR 164.514(c)) only allows a re-identification code that
is not derived from the individual's identifiers, and the patient pseudonym already links
a person's rows across sources.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

import duckdb
import pandas as pd

from workbench.cohort.deid.pseudonym import keyed_int, normalise, pseudonym
from workbench.errors import DeidError

DateMode = Literal["shift", "year"]

#: Largest shift in days; every patient's dates move forward by 1 to MAX days.
MAX_SHIFT_DAYS = 365

PROVENANCE_RULES: dict[str, str] = {
    "patient_id": "pseudonym:patient",
    "resource_id": "pseudonym:resource",
    # File names can carry the patient's name (Synthea: Given_Family_uuid.json).
    "source_file": "pseudonym:file",
    "source_id": "pseudonym:source",
    "import_id": "pseudonym:import",
}

_PATIENT_IDENTIFIERS = {
    c: "drop"
    for c in (
        "family",
        "given",
        "prefix",
        "suffix",
        "name",
        "maiden_name",
        "address_line",
        "city",
        "county",
        "district",
        "lat",
        "lon",
        "phone",
        "email",
        "ssn",
        "mrn",
        "drivers_license",
        "passport",
        "birth_place",
        "multiple_birth",
        "photo",
        "contact",
    )
}

TABLE_RULES: dict[str, dict[str, str]] = {
    "patients": {
        "resource_id": "pseudonym:patient",
        **_PATIENT_IDENTIFIERS,
        "birth_date": "birth_date",
        "deceased_date": "date",
        "gender": "keep",
        "race": "keep",
        "ethnicity": "keep",
        "marital_status": "keep",
        "state": "keep",
        "postal_code": "zip3",
        "country": "keep",
        "language": "keep",
        # Holds deceasedDateTime text as often as a flag; the shifted deceased_date says the same.
        "deceased": "drop",
    },
    "encounters": {
        "resource_id": "pseudonym:encounter",
        "encounter_id": "pseudonym:encounter",
        "start": "date",
        "end": "date",
        "class": "keep",
        "status": "keep",
        "type_code": "keep",
        "type_display": "keep",
        "reason_code": "keep",
        "reason_display": "keep",
        "provider": "pseudonym:practitioner",
        # A facility names a place smaller than a state.
        "organization": "pseudonym:id",
    },
    "conditions": {
        "encounter_id": "pseudonym:encounter",
        "onset": "date",
        "abatement": "date",
        "recorded": "date",
    },
    "observations": {
        "resource_id": "pseudonym:observation",
        "encounter_id": "pseudonym:encounter",
        "value_text": "short_text",
        "effective": "date",
    },
    "medications": {
        "encounter_id": "pseudonym:encounter",
        "medication_ref": "pseudonym:resource",
        "authored": "date",
        "dosage_text": "short_text",
    },
    "immunizations": {"encounter_id": "pseudonym:encounter", "occurrence": "date"},
    "procedures": {
        "encounter_id": "pseudonym:encounter",
        "performed_start": "date",
        "performed_end": "date",
    },
    "allergies": {"recorded": "date"},
    "diagnostic_reports": {
        "encounter_id": "pseudonym:encounter",
        "effective": "date",
        "result_ids": "pseudonyms:observation",
    },
    "documents": {
        "encounter_id": "pseudonym:encounter",
        "date": "date",
        "text": "free_text",
    },
    "claims": {
        "resource_id": "pseudonym:claim",
        "encounter_id": "pseudonym:encounter",
        "created": "date",
        "billable_start": "date",
        # Line items carry their own service dates, which the shift cannot reach.
        "items": "drop",
    },
    "eobs": {
        "encounter_id": "pseudonym:encounter",
        "claim_id": "pseudonym:claim",
        "created": "date",
    },
    "coverage": {"period_start": "date", "period_end": "date"},
    "measurements": {
        "start": "date",
        "end": "date",
        "duplicate_of": "pseudonym:resource",
        # Apple Health device names are often "<first name>'s iPhone".
        "device": "drop",
        "source_name": "drop",
        "original_value": "keep",
        "original_unit": "keep",
        "type_identifier": "keep",
    },
    "workouts": {
        "start": "date",
        "end": "date",
        "activity": "keep",
        "device": "drop",
        "source_name": "drop",
    },
    "activity_summaries": {
        "date": "date",
        **{
            c: "keep"
            for c in (
                "active_energy_kcal",
                "active_energy_goal_kcal",
                "exercise_min",
                "exercise_goal_min",
                "stand_hours",
                "stand_goal_hours",
            )
        },
    },
    "nutrition": {
        "date": "date",
        "note": "free_text",
        **{
            c: "keep"
            for c in (
                "fat_g",
                "saturated_fat_g",
                "polyunsaturated_fat_g",
                "monounsaturated_fat_g",
                "trans_fat_g",
                "cholesterol_mg",
                "sodium_mg",
                "potassium_mg",
                "carbohydrates_g",
                "fiber_g",
                "sugar_g",
                "protein_g",
                "vitamin_a_pct",
                "vitamin_c_pct",
                "calcium_pct",
                "iron_pct",
            )
        },
    },
    "import_log": {
        "sha256": "drop",
        "started": "drop",
        "finished": "drop",
        "errors": "drop",
        "status": "keep",
        "counts": "keep",
        "unknown_types": "keep",
    },
}

#: Column names that carry no identifier in any table (codes, values, units, statuses).
SAFE_COLUMNS: frozenset[str] = frozenset(
    {
        "kind",
        "status",
        "intent",
        "category",
        "class",
        "type",
        "code_system",
        "code",
        "display",
        "component",
        "value",
        "value_num",
        "unit",
        "unit_code",
        "interpretation",
        "ref_low",
        "ref_high",
        "clinical_status",
        "verification_status",
        "criticality",
        "content_type",
        "type_code",
        "type_display",
        "reason_code",
        "reason_display",
        "total",
        "payment",
        "currency",
        "payor",
        "measure",
        "source",
        "activity_type",
        "workout_type",
        "duration",
        "duration_min",
        "duration_s",
        "distance",
        "distance_km",
        "energy",
        "energy_kcal",
        "active_energy",
        "exercise_minutes",
        "stand_hours",
        "meal",
        "calories",
        "fat",
        "carbohydrates",
        "protein",
        "sodium",
        "sugar",
        "fiber",
        "cholesterol",
    }
)

_TEMPORAL = re.compile(r"^(date|timestamp)", re.IGNORECASE)
_US_ZIP = re.compile(r"^(\d{3})\d{2}(?:-?\d{4})?$")


@cache
def restricted_zip3() -> frozenset[str]:
    """ZIP3 prefixes reported as ``000`` (HHS Safe Harbor guidance, Census 2000)."""
    raw = resources.files("workbench.cohort.deid").joinpath("data/restricted_zip3.json").read_text("utf-8")
    return frozenset(json.loads(raw)["prefixes"])


def zip3(postal_code: object) -> str | None:
    """The Safe Harbor ZIP3 of a US ZIP code (``000`` when restricted); None if not a US ZIP."""
    if postal_code is None or (isinstance(postal_code, float) and pd.isna(postal_code)):
        return None
    match = _US_ZIP.match(str(postal_code).strip())
    if match is None:
        return None
    prefix = match.group(1)
    return "000" if prefix in restricted_zip3() else prefix


def age_band(age: float | int | None, *, width: int = 10) -> str:
    """The Safe Harbor age band of ``age`` in years: ``"30-39"``, ..., ``"80-89"``, ``"90+"``."""
    if age is None or pd.isna(age) or age < 0:
        return "unknown"
    years = int(age)
    if years >= 90:
        return "90+"
    low = years - years % width
    return f"{low}-{min(low + width - 1, 89)}"


def age_in_years(birth: date, on: date) -> int:
    """Completed years between ``birth`` and ``on``."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def date_offset_days(key: bytes, patient_id: str) -> int:
    """The patient's date shift in days, between 1 and :data:`MAX_SHIFT_DAYS`.

    Dates only move forward: with a backward shift of d days, an event d days after birth
    (Synthea's well-baby visits) would land on the exact birth date. A forward shift can
    only land there from before birth.
    """
    return 1 + keyed_int(key, "date-shift", normalise(patient_id, "patient")) % MAX_SHIFT_DAYS


def rules_for(table: str, columns: list[str], dtypes: Mapping[str, str]) -> dict[str, str]:
    """The rule applied to each column of ``table`` (spec first, then the safe defaults)."""
    spec = TABLE_RULES.get(table, {})
    out: dict[str, str] = {}
    for col in columns:
        if col in spec:
            out[col] = spec[col]
        elif col in PROVENANCE_RULES:
            out[col] = PROVENANCE_RULES[col]
        elif col in SAFE_COLUMNS:
            out[col] = "keep"
        elif _TEMPORAL.match(dtypes.get(col, "")):
            out[col] = "date"
        elif col.endswith("_id"):
            out[col] = "pseudonym:id"
        else:
            out[col] = "drop"
    return out


@dataclass
class _Context:
    key: bytes
    date_mode: DateMode
    patient_ids: pd.Series
    as_of: date
    known: Callable[[str], dict[str, list[str]]]
    old_patients: set[str] = field(default_factory=set)


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {str(name): str(dtype) for name, dtype in rows}


def _pseudonymise(values: pd.Series, key: bytes, kind: str) -> pd.Series:
    cache: dict[str, str] = {}

    def one(v: Any) -> Any:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return None
        s = str(v)
        if s not in cache:
            cache[s] = pseudonym(key, s, kind)
        return cache[s]

    return values.map(one).astype("object")


def _pseudonymise_lists(values: pd.Series, key: bytes, kind: str) -> pd.Series:
    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return None
        return [None if x is None else pseudonym(key, str(x), kind) for x in list(v)]

    return values.map(one).astype("object")


def _as_datetime(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    # A date stored as text: parse what parses; what does not is not exported.
    return pd.to_datetime(values, errors="coerce", utc=False, format="mixed")


def _dates(values: pd.Series, ctx: _Context, *, suppress: set[str] | None = None) -> pd.Series:
    stamps = _as_datetime(values)
    pids = ctx.patient_ids
    has_patient = pids.notna()
    if suppress:
        keep_mask = has_patient & ~pids.map(lambda p: p in suppress if isinstance(p, str) else False)
    else:
        keep_mask = has_patient
    if ctx.date_mode == "year":
        years = stamps.dt.year.astype("Int64")
        return years.where(keep_mask.to_numpy(), pd.NA)
    offsets = pids.map(
        lambda p: date_offset_days(ctx.key, str(p)) if p is not None and not pd.isna(p) else 0
    ).astype("int64")
    shifted = stamps + pd.to_timedelta(offsets.to_numpy(), unit="D")
    # A date we cannot tie to a patient cannot be shifted consistently: it is removed.
    return shifted.where(keep_mask.to_numpy())


def _patient_ages(df: pd.DataFrame, as_of: date) -> pd.Series:
    births = _as_datetime(df["birth_date"])
    deaths = (
        _as_datetime(df["deceased_date"])
        if "deceased_date" in df.columns
        else pd.Series(pd.NaT, index=df.index)
    )
    ages: list[Any] = []
    for b, d in zip(births, deaths, strict=True):
        if pd.isna(b):
            ages.append(pd.NA)
            continue
        on = d.date() if not pd.isna(d) else as_of
        ages.append(age_in_years(b.date(), on))
    return pd.Series(ages, index=df.index, dtype="Int64")


def _mentions(known: Mapping[str, list[str]], text: str) -> bool:
    """Whether any of the patient's identifiers (or a word of one) occurs in ``text``."""
    folded = text.casefold()
    digits = re.sub(r"\D", "", text)
    for values in known.values():
        for value in values:
            v = str(value)
            d = re.sub(r"\D", "", v)
            if len(d) >= 7 and d[-7:] in digits:
                return True
            for word in re.sub(r"\d+", " ", v).split():
                if len(word) >= 2 and word.casefold() in folded:
                    return True
    return False


def _free_text(values: pd.Series, ctx: _Context, *, short: bool = False) -> pd.Series:
    from workbench.cohort.deid.text import DEFAULT_ENTITIES, PATTERN_ENTITIES, deidentify_texts

    entities = PATTERN_ENTITIES if short else DEFAULT_ENTITIES
    # The same coded value repeats across thousands of rows: de-identify each text once, and
    # again with the patient's identifiers only where one of them occurs in it.
    jobs: dict[tuple[str, str | None], int] = {}
    job_of: list[int | None] = []
    for text, pid in zip(values, ctx.patient_ids, strict=True):
        if text is None or (not isinstance(text, str) and pd.isna(text)):
            job_of.append(None)
            continue
        text = str(text)
        known = ctx.known(str(pid)) if pid is not None and not pd.isna(pid) else {}
        job = (text, str(pid)) if known and _mentions(known, text) else (text, None)
        job_of.append(jobs.setdefault(job, len(jobs)))
    # One batch call: the analyzer parses each distinct paragraph once and builds one
    # recognizer per patient.
    results = deidentify_texts(
        [text for text, _ in jobs],
        known_identifiers=[ctx.known(pid) if pid is not None else None for _, pid in jobs],
        entities=entities,
    )
    out = [None if j is None else results[j].text for j in job_of]
    return pd.Series(out, index=values.index, dtype="object")


def _known_identifiers_lookup(con: duckdb.DuckDBPyConnection) -> Callable[[str], dict[str, list[str]]]:
    """Each patient's names, address, phone and other identifiers from the patients table."""
    cols = _table_columns(con, "patients")
    wanted = [
        c
        for c in ("family", "given", "prefix", "address_line", "city", "phone", "email", "ssn", "mrn")
        if c in cols
    ]
    table: dict[str, dict[str, list[str]]] = {}
    if "patient_id" in cols and wanted:
        rows = con.execute(
            "SELECT patient_id, " + ", ".join(f'"{c}"' for c in wanted) + ' FROM "patients"'
        ).fetchall()
        for pid, *vals in rows:
            entry = table.setdefault(str(pid), {})
            for col, val in zip(wanted, vals, strict=True):
                if val is None:
                    continue
                items = list(val) if isinstance(val, list | tuple) else [val]
                entry.setdefault(col, []).extend(str(v) for v in items if v not in (None, ""))
    return lambda pid: table.get(pid, {})


def deidentified_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key: bytes,
    *,
    date_mode: DateMode = "shift",
    as_of: date | None = None,
) -> pd.DataFrame:
    """A Safe Harbor de-identified copy of the records table ``table`` as a DataFrame.

    Ids become keyed pseudonyms consistent across tables (joins still work), dates move by
    one offset per patient (``date_mode="shift"``) or become years (``"year"``), ages of 90
    or more become ``"90+"``, ZIP codes keep three digits, identifiers and unknown columns
    are dropped and free text goes through the text de-identifier.
    """
    if date_mode not in ("shift", "year"):
        raise DeidError(f"date_mode must be 'shift' or 'year', not {date_mode!r}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
        raise DeidError(f"not a records table name: {table!r}")
    dtypes = _table_columns(con, table)
    if not dtypes:
        raise DeidError(f"no table {table!r} in the records database; run `workbench records import` first")
    df = con.execute(f'SELECT * FROM "{table}"').df()
    rules = rules_for(table, list(df.columns), dtypes)
    patient_ids = (
        df["patient_id"].astype("object")
        if "patient_id" in df.columns
        else pd.Series([None] * len(df), index=df.index, dtype="object")
    )
    if table == "patients" and "patient_id" not in df.columns and "resource_id" in df.columns:
        patient_ids = df["resource_id"].astype("object")
    patient_ids = patient_ids.where(patient_ids.notna(), None)

    lookup: Callable[[str], dict[str, list[str]]] | None = None

    def known(pid: str) -> dict[str, list[str]]:
        nonlocal lookup
        if lookup is None:
            lookup = _known_identifiers_lookup(con) if _table_columns(con, "patients") else (lambda _p: {})
        return lookup(pid)

    ctx = _Context(
        key=key,
        date_mode=date_mode,
        patient_ids=patient_ids,
        as_of=as_of or datetime.now(UTC).date(),
        known=known,
    )

    old: set[str] = set()
    ages: pd.Series | None = None
    if "birth_date" in df.columns and "birth_date" in rules and rules["birth_date"] == "birth_date":
        ages = _patient_ages(df, ctx.as_of)
        old = {
            str(p)
            for p, a in zip(patient_ids, ages, strict=True)
            if p is not None and not pd.isna(a) and a >= 90
        }

    out: dict[str, pd.Series] = {}
    for col in df.columns:
        rule = rules[col]
        values = df[col]
        if rule == "keep":
            out[col] = values
        elif rule == "drop":
            continue
        elif rule.startswith("pseudonym:"):
            out[col] = _pseudonymise(values, key, rule.split(":", 1)[1])
        elif rule.startswith("pseudonyms:"):
            out[col] = _pseudonymise_lists(values, key, rule.split(":", 1)[1])
        elif rule == "date":
            out[col] = _dates(values, ctx)
        elif rule == "birth_date":
            out[col] = _dates(values, ctx, suppress=old)
            assert ages is not None
            out["age"] = ages.where(ages < 90, pd.NA)
            out["age_band"] = pd.Series([age_band(a) for a in ages], index=df.index, dtype="object")
        elif rule == "zip3":
            out["zip3"] = values.map(zip3).astype("object")
        elif rule in ("free_text", "short_text"):
            out[col] = _free_text(values, ctx, short=rule == "short_text")
        else:
            raise DeidError(f"unknown de-identification rule {rule!r} for column {table}.{col}")
    return pd.DataFrame(out, index=df.index)


@dataclass(frozen=True)
class KAnonymityReport:
    """k-anonymity over quasi-identifiers: ``k`` is the size of the smallest class."""

    k: int
    quasi: tuple[str, ...]
    threshold: int
    n_records: int
    n_classes: int
    small_classes: list[dict[str, Any]]
    records_in_small_classes: int

    @property
    def ok(self) -> bool:
        """True when every equivalence class has at least ``threshold`` records."""
        return self.k >= self.threshold


def _quasi_frame_from_db(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    cols = _table_columns(con, "patients")
    if not cols:
        raise DeidError("no patients table in the records database; run `workbench records import` first")
    df = con.execute('SELECT * FROM "patients"').df()
    quasi = pd.DataFrame(index=df.index)
    if "birth_date" in df.columns:
        quasi["age_band"] = [age_band(a) for a in _patient_ages(df, as_of)]
    if "gender" in df.columns:
        quasi["sex"] = df["gender"]
    if "postal_code" in df.columns:
        quasi["zip3"] = df["postal_code"].map(zip3)
    return quasi


def k_anonymity(
    data: pd.DataFrame | duckdb.DuckDBPyConnection,
    quasi: tuple[str, ...] = ("age_band", "sex", "zip3"),
    *,
    threshold: int = 5,
    as_of: date | None = None,
) -> KAnonymityReport:
    """k-anonymity of a de-identified table (or of the database's ``patients``) over ``quasi``."""
    if isinstance(data, pd.DataFrame):
        df = data
    else:
        df = _quasi_frame_from_db(data, as_of or datetime.now(UTC).date())
    frame = pd.DataFrame(index=df.index)
    for q in quasi:
        source = q
        if q not in df.columns and q == "sex" and "gender" in df.columns:
            source = "gender"
        if source not in df.columns:
            raise DeidError(f"quasi-identifier {q!r} is not a column; have {', '.join(map(str, df.columns))}")
        frame[q] = df[source].astype("object").where(df[source].notna(), "unknown").astype(str)
    if frame.empty:
        return KAnonymityReport(0, tuple(quasi), threshold, 0, 0, [], 0)
    sizes = frame.groupby(list(quasi), dropna=False).size().reset_index(name="count")
    small = sizes[sizes["count"] < threshold].sort_values("count", kind="stable")
    return KAnonymityReport(
        k=int(sizes["count"].min()),
        quasi=tuple(quasi),
        threshold=threshold,
        n_records=len(frame),
        n_classes=len(sizes),
        small_classes=[
            {**{q: row[q] for q in quasi}, "count": int(row["count"])} for _, row in small.iterrows()
        ],
        records_in_small_classes=int(small["count"].sum()),
    )
