"""Read-only views the widgets plot, gathered from the core's records tables and labs module.

No interpretation happens here: flags, reference ranges and findings come from
:mod:`workbench.cohort.labs` and :mod:`workbench.cohort.patterns`; this module only puts rows
of one patient (or one cohort) into the shape a plot needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb
import pandas as pd

from workbench.errors import WorkbenchError

__all__ = ["EVENT_COLUMNS", "case_events", "cohort_labs", "lab_choices"]

EVENT_COLUMNS = [
    "kind",
    "start",
    "end",
    "label",
    "resource_id",
    "value",
    "unit",
    "flag",
    "ref_low",
    "ref_high",
]

# Per table: the event kind, its start and end columns and the label column (all fixed names,
# never user input, so they can be written into the SQL text).
_SPANS = {
    "encounters": ("encounter", "start", "end", "COALESCE(type_display, class)"),
    "conditions": ("condition", "onset", "abatement", "COALESCE(display, code)"),
    "medications": ("medication", "authored", None, "COALESCE(display, code)"),
}


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    try:
        con.execute(f'SELECT 1 FROM "{table}" LIMIT 0')
    except duckdb.Error:
        return False
    return True


def case_events(con: duckdb.DuckDBPyConnection, patient_id: str) -> pd.DataFrame:
    """One row per encounter, condition, medication and numeric lab/vital result of one patient.

    ``con`` should be the workspace's governed read connection, so only rows of consented
    sources appear. Lab rows carry the labs module's normalised value, reference range and flag.
    """
    from workbench.cohort.labs import lab_results

    frames: list[pd.DataFrame] = []
    for table, (kind, start, end, label) in _SPANS.items():
        if not _has_table(con, table):
            continue
        end_sql = f'"{end}"' if end else "NULL"
        df = con.execute(
            f"SELECT '{kind}' AS kind, CAST(\"{start}\" AS TIMESTAMP) AS start, "
            f'CAST({end_sql} AS TIMESTAMP) AS "end", {label} AS label, resource_id '
            f'FROM "{table}" WHERE patient_id = ? AND "{start}" IS NOT NULL ORDER BY 2',
            [patient_id],
        ).df()
        frames.append(df)
    labs = lab_results(con, patient_id)
    if not labs.empty:
        frames.append(
            pd.DataFrame(
                {
                    "kind": "lab",
                    "start": pd.to_datetime(labs["effective"]),
                    "end": pd.NaT,
                    "label": labs["display"].fillna(labs["code"]),
                    "resource_id": labs["resource_id"],
                    "value": labs["value_norm"],
                    "unit": labs["unit_norm"],
                    "flag": labs["flag"],
                    "ref_low": labs["ref_low"],
                    "ref_high": labs["ref_high"],
                }
            )
        )
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    for col in EVENT_COLUMNS:
        if col not in out:
            out[col] = None
    out["start"] = pd.to_datetime(out["start"])
    out["end"] = pd.to_datetime(out["end"])
    return out[EVENT_COLUMNS].sort_values(["start", "kind"], kind="stable").reset_index(drop=True)


def cohort_labs(con: duckdb.DuckDBPyConnection, patient_ids: Iterable[str], code: str) -> pd.DataFrame:
    """Normalised results of one lab ``code`` for every patient of a cohort (labs module's flags)."""
    from workbench.cohort.labs import lab_results

    ids = list(patient_ids)
    if not ids:
        return pd.DataFrame(columns=["patient_id", "effective", "value_norm", "unit_norm", "flag", "display"])
    df = lab_results(con, ids, [code])
    return df[df["unit_error"].isna()] if "unit_error" in df else df


def lab_choices(con: duckdb.DuckDBPyConnection, limit: int = 40) -> list[dict[str, str]]:
    """The most frequent numeric result codes as ``{code, label, unit}`` for a dropdown.

    Blood-pressure panels count by component (as the labs module reports them); ``unit`` is the
    labs module's canonical unit for the code, else the unit most often recorded.
    """
    from workbench.cohort.labs import analyte, canonical_unit_for

    if not _has_table(con, "observations"):
        return []
    rows: list[Any] = con.execute(
        "SELECT COALESCE(component, code) AS c, any_value(display) FILTER (WHERE component IS NULL), "
        "mode(COALESCE(NULLIF(unit_code, ''), unit)), count(*) AS n FROM observations "
        "WHERE value_num IS NOT NULL AND COALESCE(component, code) IS NOT NULL "
        "GROUP BY c ORDER BY n DESC, c LIMIT ?",
        [limit],
    ).fetchall()
    out = []
    for code, display, unit, _n in rows:
        known = analyte(code)
        name = known.name if known else (display or code)
        try:
            canonical = canonical_unit_for(code, unit)
        except WorkbenchError:
            canonical = unit or ""
        out.append({"code": str(code), "label": f"{name} ({code})", "unit": canonical or unit or ""})
    return out
