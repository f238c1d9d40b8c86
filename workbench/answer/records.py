"""Patient facts for the answer context, read from the workspace's records tables.

Each fact is one :class:`~workbench.answer.context.ContextItem` of kind ``record`` that keeps
its record reference (table, resource id, date, value, unit, flag, reference range). A fact
has two wordings: ``text`` with real dates for the local reader, and ``prompt_text`` with
dates relative to the patient's most recent record and pseudonymous ids, which is what an
untrusted endpoint receives.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from workbench.answer.context import ContextItem
from workbench.errors import RecordsError, UnitError

#: Base relevance of fact kinds before similarity to the question is mixed in.
PRIORITY = {
    "lab_abnormal": 0.9,
    "lab_changing": 0.8,
    "condition_active": 0.75,
    "medication_active": 0.7,
    "allergy": 0.65,
    "observation": 0.5,
    "condition_resolved": 0.4,
    "encounter": 0.45,
    "procedure": 0.4,
    "immunization": 0.3,
    "measurement": 0.4,
}
#: A relative change at least this large between the last two values marks a result as changing.
CHANGE_THRESHOLD = 0.2

FLAG_WORDS = {"H": "high", "L": "low", "HH": "critically high", "LL": "critically low", "A": "abnormal"}


@dataclass(frozen=True, slots=True)
class PatientRef:
    """A resolved patient: the stored id and the pseudonym used in prompts."""

    patient_id: str
    pseudo_id: str


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """Column names of ``table`` (empty when the table does not exist)."""
    try:
        rows = con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
    except duckdb.Error:
        return set()
    return {str(r[0]) for r in rows}


def _rows(
    con: duckdb.DuckDBPyConnection, table: str, patient_id: str, order: str = ""
) -> list[dict[str, Any]]:
    cols = table_columns(con, table)
    if not cols or "patient_id" not in cols:
        return []
    cur = con.execute(f'SELECT * FROM "{table}" WHERE patient_id = ? {order}', [patient_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _as_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=None)
    except ValueError:
        return None


def relative_when(when: datetime | None, anchor: datetime | None) -> str:
    """A date as distance before the patient's most recent record (no calendar date)."""
    if when is None or anchor is None:
        return "date unknown"
    days = (anchor.date() - when.date()).days
    if days <= 0:
        return "at the most recent record"
    if days < 60:
        return f"{days} days before the most recent record"
    if days < 730:
        return f"about {round(days / 30.44)} months before the most recent record"
    return f"about {days / 365.25:.1f} years before the most recent record"


def _fmt_num(v: float) -> str:
    if math.isfinite(v) and abs(v - round(v)) < 1e-9:
        return str(int(round(v)))
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"


def lab_flag(value: float | None, low: float | None, high: float | None, interpretation: str | None) -> str:
    """``H``/``L`` against the reference range, else the record's own interpretation code."""
    if value is not None and low is not None and value < low:
        return "L"
    if value is not None and high is not None and value > high:
        return "H"
    code = (interpretation or "").strip().upper()
    return code if code in FLAG_WORDS else ""


def range_from_labs(
    code: str, value: float, unit: str, sex: str | None, age: float | None
) -> tuple[float | None, float | None, str, str]:
    """``(low, high, unit, flag)`` from the labs module's reference ranges when the record has none.

    The range is expressed in the record's unit when the value converts; a unit that does not
    convert leaves the result unflagged rather than guessed.
    """
    try:
        from workbench.cohort import labs
    except ImportError:  # pragma: no cover - the labs module ships with the package
        return None, None, unit, ""
    rng = labs.reference_range(code, sex, age)
    if rng is None:
        return None, None, unit, ""
    try:
        in_range_unit = labs.convert(value, unit or None, rng.unit, code)
    except (UnitError, ValueError):
        return None, None, unit, ""
    verdict = labs.flag_value(in_range_unit, rng)
    flag = {"high": "H", "low": "L", "normal": ""}.get(verdict, "")
    if verdict == "critical":
        flag = "HH" if rng.critical_high is not None and in_range_unit > rng.critical_high else "LL"
    try:
        low = labs.convert(rng.low, rng.unit, unit, code) if rng.low is not None and unit else rng.low
        high = labs.convert(rng.high, rng.unit, unit, code) if rng.high is not None and unit else rng.high
        shown_unit = unit or rng.unit
    except (UnitError, ValueError):
        low, high, shown_unit = rng.low, rng.high, rng.unit
    return low, high, shown_unit, flag


def _reference(low: float | None, high: float | None, unit: str) -> str:
    u = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f"reference range {_fmt_num(low)}–{_fmt_num(high)}{u}"
    if low is not None:
        return f"reference range above {_fmt_num(low)}{u}"
    if high is not None:
        return f"reference range below {_fmt_num(high)}{u}"
    return ""


class FactBuilder:
    """Turns records rows into facts with both a local and a de-identified wording."""

    def __init__(self, anchor: datetime | None) -> None:
        self.anchor = anchor

    def make(
        self,
        *,
        table: str,
        resource_type: str,
        row: dict[str, Any],
        when: datetime | None,
        body: str,
        kind: str,
        **fields: Any,
    ) -> ContextItem:
        local_when = when.date().isoformat() if when else "date unknown"
        text = f"{body} ({local_when})."
        prompt = f"{body} ({relative_when(when, self.anchor)})."
        return ContextItem(
            kind="record",
            text=text,
            prompt_text=prompt,
            relevance=PRIORITY.get(kind, 0.4),
            table=table,
            resource_type=resource_type,
            resource_id=str(row.get("resource_id") or ""),
            date=when,
            extra={"fact_kind": kind},
            **fields,
        )


def lab_facts(
    rows: Iterable[dict[str, Any]],
    builder: FactBuilder,
    *,
    sex: str | None = None,
    age: float | None = None,
) -> list[ContextItem]:
    """One fact per observation code: the latest value, its flag and range, and the trend.

    The record's own range wins; otherwise the labs module's range for the patient's sex and
    age is used.
    """
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("value_num") is None and not r.get("value_text"):
            continue
        key = (str(r.get("code") or r.get("display") or ""), str(r.get("component") or ""))
        series.setdefault(key, []).append(r)
    facts = []
    for rs in series.values():
        rs.sort(key=lambda r: _as_dt(r.get("effective")) or datetime.min)
        last = rs[-1]
        when = _as_dt(last.get("effective"))
        display = str(last.get("display") or last.get("code") or "result")
        unit = str(last.get("unit") or "")
        value = last.get("value_num")
        low, high = last.get("ref_low"), last.get("ref_high")
        if value is None:
            facts.append(
                builder.make(
                    table="observations",
                    resource_type="Observation",
                    row=last,
                    when=when,
                    body=f"{display}: {last.get('value_text')}",
                    kind="observation",
                    value=str(last.get("value_text")),
                    code=str(last.get("code") or ""),
                    display=display,
                )
            )
            continue
        value = float(value)
        flag = lab_flag(value, low, high, last.get("interpretation"))
        if low is None and high is None and last.get("code"):
            low, high, range_unit, flag = range_from_labs(str(last["code"]), value, unit, sex, age)
            flag = flag or lab_flag(value, None, None, last.get("interpretation"))
            unit = unit or range_unit
        body = f"{display}: {_fmt_num(value)}{' ' + unit if unit else ''}"
        notes = [w for w in (FLAG_WORDS.get(flag, ""), _reference(low, high, unit)) if w]
        if notes:
            body += f" ({'; '.join(notes)})"
        kind = "lab_abnormal" if flag else "observation"
        prev = next((r for r in reversed(rs[:-1]) if r.get("value_num") is not None), None)
        change = None
        if prev is not None:
            pv = float(prev["value_num"])
            change = (value - pv) / abs(pv) if pv else None
            direction = "up" if value > pv else "down" if value < pv else "unchanged"
            body += f", {direction} from {_fmt_num(pv)}"
            if change is not None and abs(change) >= CHANGE_THRESHOLD and not flag:
                kind = "lab_changing"
        category = str(last.get("category") or "")
        if category and category != "laboratory" and kind == "observation":
            kind = "observation"
        item = builder.make(
            table="observations",
            resource_type="Observation",
            row=last,
            when=when,
            body=body,
            kind=kind,
            value=value,
            unit=unit,
            flag=flag,
            ref_low=low,
            ref_high=high,
            code=str(last.get("code") or ""),
            display=display,
        )
        item.extra.update(
            {
                "category": category,
                "change": change,
                "previous_resource_id": str(prev.get("resource_id") or "") if prev else "",
                "previous_value": float(prev["value_num"]) if prev else None,
                "n_values": len(rs),
            }
        )
        facts.append(item)
    return facts


def _text(row: dict[str, Any], *names: str) -> str:
    for n in names:
        v = row.get(n)
        if v not in (None, ""):
            return str(v)
    return ""


def load_patient_facts(con: duckdb.DuckDBPyConnection, patient_id: str) -> list[ContextItem]:
    """All facts about one patient that the answer tasks can cite (labs, problems, medicines, ...)."""
    obs = _rows(con, "observations", patient_id)
    conds = _rows(con, "conditions", patient_id)
    meds = _rows(con, "medications", patient_id)
    allergies = _rows(con, "allergies", patient_id)
    encounters = _rows(con, "encounters", patient_id, 'ORDER BY "start"')
    procs = _rows(con, "procedures", patient_id)
    imms = _rows(con, "immunizations", patient_id)
    dates = [
        d
        for d in [
            *(_as_dt(r.get("effective")) for r in obs),
            *(_as_dt(r.get("start")) for r in encounters),
            *(_as_dt(r.get("onset")) for r in conds),
            *(_as_dt(r.get("authored")) for r in meds),
        ]
        if d is not None
    ]
    anchor = max(dates) if dates else None
    builder = FactBuilder(anchor)
    sex, age = _sex_age(con, patient_id, anchor)
    facts = lab_facts(obs, builder, sex=sex, age=age)
    for r in conds:
        active = r.get("abatement") is None and str(r.get("clinical_status") or "active") in (
            "active",
            "recurrence",
            "relapse",
        )
        name = _text(r, "display", "code")
        body = f"Condition: {name}, {'active' if active else 'resolved'}"
        facts.append(
            builder.make(
                table="conditions",
                resource_type="Condition",
                row=r,
                when=_as_dt(r.get("onset") or r.get("recorded")),
                body=body,
                kind="condition_active" if active else "condition_resolved",
                code=str(r.get("code") or ""),
                display=name,
            )
        )
    for r in meds:
        status = str(r.get("status") or "")
        name = _text(r, "display", "code")
        dosage = f", {r['dosage_text']}" if r.get("dosage_text") else ""
        facts.append(
            builder.make(
                table="medications",
                resource_type="MedicationRequest",
                row=r,
                when=_as_dt(r.get("authored")),
                body=f"Medication: {name}{dosage} ({status or 'status unknown'})",
                kind="medication_active" if status in ("active", "") else "observation",
                code=str(r.get("code") or ""),
                display=name,
            )
        )
    for r in allergies:
        name = _text(r, "display", "code")
        crit = f", criticality {r['criticality']}" if r.get("criticality") else ""
        facts.append(
            builder.make(
                table="allergies",
                resource_type="AllergyIntolerance",
                row=r,
                when=_as_dt(r.get("recorded")),
                body=f"Allergy or intolerance: {name}{crit}",
                kind="allergy",
                code=str(r.get("code") or ""),
                display=name,
            )
        )
    for r in encounters[-5:]:  # the recent visits are what a question about "last visit" needs
        name = _text(r, "type_display", "class") or "encounter"
        reason = f" for {r['reason_display']}" if r.get("reason_display") else ""
        facts.append(
            builder.make(
                table="encounters",
                resource_type="Encounter",
                row=r,
                when=_as_dt(r.get("start")),
                body=f"Encounter: {name}{reason}",
                kind="encounter",
                display=name,
            )
        )
    for r in sorted(procs, key=lambda r: _as_dt(r.get("performed_start")) or datetime.min)[-10:]:
        name = _text(r, "display", "code")
        facts.append(
            builder.make(
                table="procedures",
                resource_type="Procedure",
                row=r,
                when=_as_dt(r.get("performed_start")),
                body=f"Procedure: {name}",
                kind="procedure",
                code=str(r.get("code") or ""),
                display=name,
            )
        )
    for r in sorted(imms, key=lambda r: _as_dt(r.get("occurrence")) or datetime.min)[-5:]:
        name = _text(r, "display", "code")
        facts.append(
            builder.make(
                table="immunizations",
                resource_type="Immunization",
                row=r,
                when=_as_dt(r.get("occurrence")),
                body=f"Immunization: {name}",
                kind="immunization",
                code=str(r.get("code") or ""),
                display=name,
            )
        )
    return facts


def _sex_age(
    con: duckdb.DuckDBPyConnection, patient_id: str, on: datetime | None
) -> tuple[str | None, float | None]:
    rows = _rows(con, "patients", patient_id)
    if not rows:
        return None, None
    sex = rows[0].get("gender")
    birth = _as_dt(rows[0].get("birth_date"))
    age = (on - birth).days / 365.25 if birth and on else None
    return (str(sex).lower() if sex else None), age


def patient_demographics(con: duckdb.DuckDBPyConnection, patient_id: str) -> dict[str, Any]:
    """Age band and gender only: the demographics that may accompany de-identified facts."""
    rows = _rows(con, "patients", patient_id)
    if not rows:
        raise RecordsError(
            f"patient {patient_id!r} is not in the workspace's patients table; "
            "list patients with `workbench records patients`"
        )
    return {"gender": rows[0].get("gender"), "birth_date": rows[0].get("birth_date")}


def resolve_patient_id(con: duckdb.DuckDBPyConnection, ref: str, *, key: bytes | None = None) -> str:
    """The stored patient id for ``ref``: an id, its pseudonym (as ``records patients`` lists), or a unique prefix."""
    if "patient_id" not in table_columns(con, "patients"):
        raise RecordsError(
            "the workspace has no patients table; import records with `workbench records import`"
        )
    ref = ref.strip()
    ids = [str(r[0]) for r in con.execute("SELECT DISTINCT patient_id FROM patients").fetchall()]
    if ref in ids:
        return ref
    if key is not None:
        from workbench.cohort.deid import pseudonym

        for pid in ids:
            if pseudonym(key, pid, "patient") == ref:
                return pid
    bare = re.sub(r"^(urn:uuid:|.*/)", "", ref)  # "Patient/abc" names the same patient as "abc"
    if bare in ids:
        return bare
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RecordsError(f"patient reference {ref!r} matches {len(matches)} patients; give more of the id")
    raise RecordsError(
        f"no patient {ref!r} in the workspace; list patients with `workbench records patients`"
    )
