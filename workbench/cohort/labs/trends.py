"""Per-patient trends of any measure: least-squares slope per year and the last change."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import numpy as np
import pandas as pd

from workbench.cohort.labs.results import lab_results
from workbench.cohort.labs.units import canonical_unit

__all__ = ["TREND_COLUMNS", "trend_of", "trends"]

TREND_COLUMNS = [
    "code",
    "display",
    "unit",
    "n",
    "first_date",
    "last_date",
    "first_value",
    "last_value",
    "previous_value",
    "last_change",
    "last_change_pct",
    "last_change_date",
    "slope_per_year",
    "last_flag",
    "unconverted",
]

_SECONDS_PER_YEAR = 365.25 * 86400.0


def trend_of(dates: pd.Series, values: pd.Series) -> dict[str, float | int | pd.Timestamp | None]:
    """Slope per year (least squares), last value and last change of one measure's series."""
    order = np.argsort(pd.to_datetime(dates).to_numpy(), kind="stable")
    t = pd.to_datetime(dates).to_numpy()[order]
    v = np.asarray(values, dtype=float)[order]
    keep = ~np.isnan(v) & ~pd.isna(t)
    t, v = t[keep], v[keep]
    n = len(v)
    out: dict[str, float | int | pd.Timestamp | None] = {
        "n": n,
        "first_date": pd.Timestamp(t[0]) if n else None,
        "last_date": pd.Timestamp(t[-1]) if n else None,
        "first_value": float(v[0]) if n else None,
        "last_value": float(v[-1]) if n else None,
        "previous_value": None,
        "last_change": None,
        "last_change_pct": None,
        "last_change_date": None,
        "slope_per_year": None,
    }
    if n >= 2:
        prev = float(v[-2])
        change = float(v[-1]) - prev
        out["previous_value"] = prev
        out["last_change"] = change
        out["last_change_pct"] = change / abs(prev) * 100.0 if prev != 0 else None
        out["last_change_date"] = pd.Timestamp(t[-1])
        years = (t - t[0]).astype("timedelta64[s]").astype(float) / _SECONDS_PER_YEAR
        if np.ptp(years) > 0:
            # Closed-form least squares; polyfit would warn on near-singular fits.
            x = years - years.mean()
            out["slope_per_year"] = float(np.sum(x * (v - v.mean())) / np.sum(x * x))
    return out


def _measure_codes() -> dict[str, str]:
    """Wellness measure name -> the LOINC code its FHIR twin is filed under (first one listed)."""
    try:
        from workbench.cohort.measures import LOINC_MEASURES
    except ImportError:  # pragma: no cover - the importer ships it
        return {}
    out: dict[str, str] = {}
    for code, measure in LOINC_MEASURES.items():
        out.setdefault(measure, code)
    return out


def _measurement_rows(
    con: duckdb.DuckDBPyConnection, patient_id: str, codes: Iterable[str] | None
) -> pd.DataFrame:
    """Wellness measurements (Apple Health, MyFitnessPal) shaped like lab results.

    Rows imported from FHIR are skipped (they are already observations), as are rows marked as
    duplicates of another source's row. A measure with a LOINC twin (weight -> 29463-7) joins
    that code's series, so clinic and home weights form one trend.
    """
    try:
        df = con.execute(
            "SELECT measure, value, unit, start AS effective FROM measurements WHERE patient_id = ? "
            "AND value IS NOT NULL AND coalesce(source, '') <> 'fhir' AND duplicate_of IS NULL",
            [patient_id],
        ).df()
    except duckdb.CatalogException:
        return pd.DataFrame()
    if df.empty:
        return df
    twins = _measure_codes()
    df["code"] = [twins.get(m, m) for m in df["measure"]]
    if codes is not None:
        df = df[df["code"].isin([str(c) for c in codes]) | df["measure"].isin([str(c) for c in codes])]
    units: dict[str, str | None] = {}
    for u in set(df["unit"].dropna()):
        try:
            units[u] = canonical_unit(u)
        except Exception:  # noqa: BLE001 - e.g. "count", "kcal": kept under their own spelling
            units[u] = u
    return pd.DataFrame(
        {
            "code": df["code"],
            "display": df["measure"],
            "effective": df["effective"],
            "value_norm": df["value"].astype(float),
            "unit_norm": [units.get(u) if isinstance(u, str) else None for u in df["unit"]],
            "unit_error": None,
            "flag": None,
        }
    )


def trends(
    con: duckdb.DuckDBPyConnection,
    patient_id: str,
    codes: Iterable[str] | None = None,
    *,
    include_wellness: bool = True,
) -> pd.DataFrame:
    """One row per measure of one patient: n, first/last, last change (absolute, %), slope per year.

    Values are the normalised ones, so a series mixing mg/dL and mmol/L reads as one. Results
    whose unit could not be converted are counted in ``unconverted`` and left out of the series.
    With ``include_wellness`` the patient's wellness measurements join the series of their LOINC
    twin (weight, heart rate, blood pressure...) or form their own (steps, sleep).
    """
    codes = None if codes is None else [str(c) for c in codes]
    df = lab_results(con, patient_id, codes)
    if include_wellness:
        extra = _measurement_rows(con, patient_id, codes)
        if not extra.empty:
            frames = [f for f in (df, extra) if not f.empty]
            df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else extra
    if df.empty:
        return pd.DataFrame(columns=TREND_COLUMNS)
    rows = []
    for code, g in df.groupby("code", sort=True):
        bad = g["unit_error"].notna()
        ok = g[~bad]
        # Codes without an analyte entry normalise to their own unit's spelling; keep units apart.
        for unit, gu in ok.groupby("unit_norm", sort=True) if len(ok) else [(None, ok)]:
            stats = trend_of(gu["effective"], gu["value_norm"])
            last_flag = gu.sort_values("effective")["flag"].iloc[-1] if len(gu) else None
            rows.append(
                {
                    "code": code,
                    "display": g["display"].dropna().iloc[-1] if g["display"].notna().any() else None,
                    "unit": unit,
                    **stats,
                    "last_flag": last_flag,
                    "unconverted": int(bad.sum()),
                }
            )
    return pd.DataFrame(rows, columns=TREND_COLUMNS)
