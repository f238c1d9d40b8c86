"""Lab and vital results from the records database, normalised, ranged and flagged."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from workbench.cohort.labs.ranges import flag_value, reference_range
from workbench.cohort.labs.units import analyte, canonical_unit_for, converter, tidy
from workbench.errors import UnitError

__all__ = ["RESULT_COLUMNS", "lab_results", "normalize_frame"]

RESULT_COLUMNS = [
    "patient_id",
    "resource_id",
    "code",
    "panel_code",
    "display",
    "category",
    "effective",
    "value",
    "unit",
    "value_norm",
    "unit_norm",
    "unit_error",
    "ref_low",
    "ref_high",
    "ref_text",
    "range_source",
    "flag",
    "sex",
    "age",
    "source_id",
]

# One patient row per id even when the patient arrived from several sources.
_SQL = """
WITH p AS (
    SELECT patient_id, any_value(gender) AS sex, min(birth_date) AS birth_date
    FROM patients GROUP BY patient_id
)
SELECT o.patient_id, o.resource_id,
       COALESCE(o.component, o.code) AS code,
       CASE WHEN o.component IS NOT NULL THEN o.code END AS panel_code,
       o.display, o.category, o.effective, o.value_num AS value,
       COALESCE(NULLIF(o.unit_code, ''), NULLIF(o.unit, '')) AS unit,
       o.ref_low AS reported_low, o.ref_high AS reported_high,
       p.sex,
       date_diff('day', p.birth_date, CAST(o.effective AS DATE)) / 365.25 AS age,
       o.source_id
FROM observations o LEFT JOIN p ON p.patient_id = o.patient_id
WHERE o.value_num IS NOT NULL {where}
ORDER BY o.patient_id, code, o.effective, o.resource_id
"""


def _query(
    con: duckdb.DuckDBPyConnection, patient_id: str | Iterable[str] | None, codes: Iterable[str] | None
) -> pd.DataFrame:
    where: list[str] = []
    params: list[Any] = []
    if patient_id is not None:
        ids = [patient_id] if isinstance(patient_id, str) else list(patient_id)
        where.append("AND list_contains(?, o.patient_id)")
        params.append(ids)
    if codes is not None:
        where.append("AND list_contains(?, COALESCE(o.component, o.code))")
        params.append([str(c) for c in codes])
    return con.execute(_SQL.format(where=" ".join(where)), params).df()


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``value_norm``, ``unit_norm`` and ``unit_error`` to a frame with code/value/unit columns.

    Rows whose unit is unknown or inconvertible keep their raw value and get the reason in
    ``unit_error`` (and NaN in ``value_norm``): they are reported as unconverted, never dropped.
    """
    out = df.copy()
    value_norm = np.full(len(out), np.nan)
    unit_norm: list[str | None] = [None] * len(out)
    unit_error: list[str | None] = [None] * len(out)
    if len(out):
        keys = [
            (str(c), u if isinstance(u, str) and u.strip() else None)
            for c, u in zip(out["code"], out["unit"])
        ]
        values = out["value"].to_numpy(dtype=float)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        for (code, unit), idx in groups.items():
            try:
                target = canonical_unit_for(code, unit if unit is not None else _implied(code))
                fn = converter(unit, target, code)
            except UnitError as exc:
                for i in idx:
                    unit_error[i] = str(exc)
                continue
            arr = np.asarray(idx)
            value_norm[arr] = [tidy(fn(v)) for v in values[arr]]
            for i in idx:
                unit_norm[i] = target
    out["value_norm"] = value_norm
    out["unit_norm"] = unit_norm
    out["unit_error"] = unit_error
    return out


def _implied(code: str) -> str | None:
    a = analyte(code)
    return a.implied_unit if a is not None else None


def _name(code: str) -> str:
    a = analyte(code)
    return a.name if a is not None else str(code)


def _apply_ranges(df: pd.DataFrame) -> pd.DataFrame:
    n = len(df)
    low = np.full(n, np.nan)
    high = np.full(n, np.nan)
    text: list[str | None] = [None] * n
    source: list[str | None] = [None] * n
    flags: list[str | None] = [None] * n
    codes = df["code"].astype(str).to_numpy()
    sexes = df["sex"].to_numpy() if "sex" in df else np.full(n, None)
    ages = df["age"].to_numpy(dtype=float) if "age" in df else np.full(n, np.nan)
    vals = df["value_norm"].to_numpy(dtype=float)
    rep_low = df["reported_low"].to_numpy(dtype=float) if "reported_low" in df else np.full(n, np.nan)
    rep_high = df["reported_high"].to_numpy(dtype=float) if "reported_high" in df else np.full(n, np.nan)
    units = df["unit"].to_numpy()
    unit_norms = df["unit_norm"].to_numpy()
    for i in range(n):
        if np.isnan(vals[i]):
            continue
        sex = sexes[i] if isinstance(sexes[i], str) else None
        age = None if np.isnan(ages[i]) else float(ages[i])
        rng = reference_range(codes[i], sex, age)
        if not (np.isnan(rep_low[i]) and np.isnan(rep_high[i])):
            # The laboratory's own interval, reported with the result, wins over ours; it is in
            # the result's unit, so it is converted the same way as the value.
            unit = units[i] if isinstance(units[i], str) else None
            fn = converter(unit, str(unit_norms[i]), codes[i])
            lo = fn(float(rep_low[i])) if not np.isnan(rep_low[i]) else np.nan
            hi = fn(float(rep_high[i])) if not np.isnan(rep_high[i]) else np.nan
            low[i], high[i] = lo, hi
            text[i] = f"{'' if np.isnan(lo) else f'{lo:g}'}-{'' if np.isnan(hi) else f'{hi:g}'}"
            source[i] = "reference range reported with the result"
            if rng is not None and rng.critical_low is not None and vals[i] < rng.critical_low:
                flags[i] = "critical"
            elif rng is not None and rng.critical_high is not None and vals[i] > rng.critical_high:
                flags[i] = "critical"
            elif not np.isnan(lo) and vals[i] < lo:
                flags[i] = "low"
            elif not np.isnan(hi) and vals[i] > hi:
                flags[i] = "high"
            else:
                flags[i] = "normal"
            continue
        if rng is None:
            continue
        low[i] = np.nan if rng.low is None else rng.low
        high[i] = np.nan if rng.high is None else rng.high
        text[i] = rng.text()
        source[i] = rng.source
        flags[i] = flag_value(float(vals[i]), rng)
    df["ref_low"] = low
    df["ref_high"] = high
    df["ref_text"] = text
    df["range_source"] = source
    df["flag"] = flags
    return df


def lab_results(
    con: duckdb.DuckDBPyConnection,
    patient_id: str | Iterable[str] | None = None,
    codes: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Numeric observations with normalised value and unit, reference range, flag and range source.

    ``code`` is the measured code (a component's code for blood-pressure panels, whose panel
    code is in ``panel_code``). ``age`` is the age in years at the result's date.
    """
    df = _query(con, patient_id, codes)
    if df.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    df = normalize_frame(df)
    # A component row carries its panel's display (e.g. "Blood pressure panel"); name the component.
    comp = df["panel_code"].notna()
    if comp.any():
        df.loc[comp, "display"] = [_name(c) for c in df.loc[comp, "code"]]
    df = _apply_ranges(df)
    return df[RESULT_COLUMNS].reset_index(drop=True)
