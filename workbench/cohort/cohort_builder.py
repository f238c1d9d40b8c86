"""Cohort builder: criteria as versioned JSON, compiled to parameterised SQL on the records tables.

A definition is a list of top-level criteria combined with AND; each top-level step is one
row of the attrition table. Criteria cover conditions, labs (with unit normalisation), medications,
age at the index date, sex and encounters, and nest with ``and``/``or``/``not``::

    {"schema_version": 1, "name": "adults with high HbA1c", "index_date": "2021-01-01",
     "criteria": [
       {"type": "age", "min": 18},
       {"type": "lab", "codes": ["4548-4"], "op": ">=", "value": 48, "unit": "mmol/mol",
        "which": "latest", "window": {"days_before": 730}},
       {"type": "not", "criterion": {"type": "medication", "text": "insulin"}}]}

Every user value travels as a query parameter; only column names and operators chosen from
fixed lists are written into the SQL text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.cohort.labs.units import analyte, canonical_unit, converter
from workbench.errors import CohortError, UnitError

__all__ = [
    "SCHEMA_VERSION",
    "CohortDefinition",
    "CohortResult",
    "compile_criterion",
    "describe",
    "load_definition",
    "parse_definition",
    "run_cohort",
    "run_sql",
    "save_definition",
]

SCHEMA_VERSION = 1

#: Short names for code systems; any other value is compared verbatim with ``code_system``.
CODE_SYSTEMS = {
    "snomed": "http://snomed.info/sct",
    "sct": "http://snomed.info/sct",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
    "icd-10": "http://hl7.org/fhir/sid/icd-10",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd-10-cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "loinc": "http://loinc.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
}

Op = Literal["<", "<=", ">", ">="]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_M):
    """A time window: absolute (``start``/``end`` dates, inclusive) or relative to the index date."""

    start: date | None = None
    end: date | None = None
    days_before: int | None = Field(default=None, ge=0)
    days_after: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        absolute = self.start is not None or self.end is not None
        relative = self.days_before is not None or self.days_after is not None
        if absolute and relative:
            raise ValueError("use either start/end or days_before/days_after, not both")
        if not absolute and not relative:
            raise ValueError("give start/end dates or days_before/days_after")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self

    def bounds(self, index: date) -> tuple[datetime | None, datetime | None]:
        """``[lo, hi)`` timestamps of the window for this index date."""
        if self.days_before is not None or self.days_after is not None:
            lo = index - timedelta(days=self.days_before) if self.days_before is not None else None
            hi = index + timedelta(days=(self.days_after or 0) + 1)
            return (_ts(lo) if lo else None), _ts(hi)
        return (
            _ts(self.start) if self.start else None,
            _ts(self.end + timedelta(days=1)) if self.end else None,
        )

    def text(self) -> str:
        """The window as text."""
        if self.days_before is not None or self.days_after is not None:
            parts = []
            if self.days_before is not None:
                parts.append(f"{self.days_before} d before")
            if self.days_after:
                parts.append(f"{self.days_after} d after")
            return "within " + " and ".join(parts) + " the index date"
        return f"between {self.start or '...'} and {self.end or '...'}"


def _ts(d: date) -> datetime:
    return datetime(d.year, d.month, d.day)


class _Coded(_M):
    label: str | None = None
    codes: list[str] = Field(default_factory=list)
    system: str | None = None
    text: str | None = Field(default=None, min_length=1)
    window: Window | None = None

    @model_validator(mode="after")
    def _codes_or_text(self) -> _Coded:
        if not self.codes and not self.text:
            raise ValueError("give 'codes' or 'text'")
        if any(not c.strip() for c in self.codes):
            raise ValueError("codes must not be empty strings")
        return self


class ConditionCriterion(_Coded):
    """Patients with a condition matching any code (``E11*`` = prefix) or whose display contains ``text``."""

    type: Literal["condition"]
    active_at_index: bool = False


class MedicationCriterion(_Coded):
    """Patients with a medication (RxNorm code or text in its display), optionally in a window."""

    type: Literal["medication"]
    status: list[str] = Field(default_factory=list)


class LabCriterion(_M):
    """Patients with a result of ``codes`` ``op`` ``value`` ``unit`` (any result, or the latest)."""

    type: Literal["lab"]
    label: str | None = None
    codes: list[str] = Field(min_length=1)
    op: Op
    value: float
    unit: str
    which: Literal["any", "latest"] = "any"
    window: Window | None = None

    @model_validator(mode="after")
    def _unit_known(self) -> LabCriterion:
        try:
            canonical_unit(self.unit)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        return self


class AgeCriterion(_M):
    """Age in whole years at the index date, ``min <= age <= max``."""

    type: Literal["age"]
    label: str | None = None
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> AgeCriterion:
        if self.min is None and self.max is None:
            raise ValueError("give 'min' or 'max'")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError("'max' is below 'min'")
        return self


class SexCriterion(_M):
    """Administrative sex as recorded (FHIR ``Patient.gender``)."""

    type: Literal["sex"]
    label: str | None = None
    values: list[Literal["male", "female", "other", "unknown"]] = Field(min_length=1)


class EncounterCriterion(_M):
    """At least ``min_count`` encounters (of the given classes, e.g. EMER) starting in the window."""

    type: Literal["encounter"]
    label: str | None = None
    window: Window | None = None
    classes: list[str] = Field(default_factory=list)
    min_count: int = Field(default=1, ge=1)


class AndCriterion(_M):
    """All of the nested criteria."""

    type: Literal["and"]
    label: str | None = None
    criteria: list[Criterion] = Field(min_length=1)


class OrCriterion(_M):
    """Any of the nested criteria."""

    type: Literal["or"]
    label: str | None = None
    criteria: list[Criterion] = Field(min_length=1)


class NotCriterion(_M):
    """Patients that do not meet the nested criterion."""

    type: Literal["not"]
    label: str | None = None
    criterion: Criterion


Criterion = Annotated[
    ConditionCriterion
    | MedicationCriterion
    | LabCriterion
    | AgeCriterion
    | SexCriterion
    | EncounterCriterion
    | AndCriterion
    | OrCriterion
    | NotCriterion,
    Field(discriminator="type"),
]

for _cls in (AndCriterion, OrCriterion, NotCriterion):
    _cls.model_rebuild()


class CohortDefinition(_M):
    """A saved cohort: top-level criteria combined with AND, in attrition order."""

    schema_version: Literal[1]
    name: str = Field(min_length=1)
    description: str = ""
    index_date: date | None = None
    criteria: list[Criterion] = Field(min_length=1)

    def to_json(self) -> str:
        """The definition as indented JSON (what :func:`save_definition` writes)."""
        return self.model_dump_json(indent=2, exclude_none=True)


# -- loading and saving -----------------------------------------------------------------------


def parse_definition(data: dict[str, Any] | str, *, source: str = "definition") -> CohortDefinition:
    """Validate a definition given as a dict or JSON text; CohortError names the bad field."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CohortError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise CohortError(f"{source}: a cohort definition is a JSON object")
    version = data.get("schema_version")
    if version is None:
        raise CohortError(
            f"{source}: field 'schema_version' is missing (this version reads {SCHEMA_VERSION})"
        )
    if version != SCHEMA_VERSION:
        raise CohortError(
            f"{source}: field 'schema_version' is {version!r}; this version of the workbench reads "
            f"{SCHEMA_VERSION}"
        )
    try:
        return CohortDefinition.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise CohortError(f"{source}: invalid field '{loc}': {msg}") from None


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in {"condition", "medication", "lab", "age", "sex", "encounter", "and", "or", "not"}:
            continue  # the discriminator tag pydantic inserts; the JSON has no such level
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


def load_definition(path: Path | str) -> CohortDefinition:
    """Read and validate a definition file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CohortError(f"{p}: no such cohort definition file") from None
    except UnicodeDecodeError:
        raise CohortError(f"{p}: not UTF-8 text") from None
    return parse_definition(text, source=str(p))


def save_definition(definition: CohortDefinition, path: Path | str) -> Path:
    """Write ``definition`` as JSON (atomically) and return the path."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(definition.to_json() + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


# -- describing -------------------------------------------------------------------------------


def describe(c: Criterion) -> str:
    """A one-line human description (used when a criterion has no ``label``)."""
    if c.label:
        return c.label
    if isinstance(c, ConditionCriterion | MedicationCriterion):
        what = " or ".join([*c.codes, *([f"'{c.text}'"] if c.text else [])])
        extra = " active at index" if isinstance(c, ConditionCriterion) and c.active_at_index else ""
        win = f" {c.window.text()}" if c.window else ""
        return f"{c.type} {what}{extra}{win}"
    if isinstance(c, LabCriterion):
        win = f" {c.window.text()}" if c.window else ""
        return f"lab {'/'.join(c.codes)} ({c.which}) {c.op} {c.value:g} {c.unit}{win}"
    if isinstance(c, AgeCriterion):
        if c.min is not None and c.max is not None:
            return f"age {c.min}-{c.max}"
        return f"age >= {c.min}" if c.min is not None else f"age <= {c.max}"
    if isinstance(c, SexCriterion):
        return "sex " + " or ".join(c.values)
    if isinstance(c, EncounterCriterion):
        cls = "/".join(c.classes) + " " if c.classes else ""
        win = f" {c.window.text()}" if c.window else ""
        return f">= {c.min_count} {cls}encounter(s){win}"
    if isinstance(c, NotCriterion):
        return f"not ({describe(c.criterion)})"
    assert isinstance(c, AndCriterion | OrCriterion)
    return f" {c.type} ".join(f"({describe(x)})" for x in c.criteria)


# -- compiling to SQL -------------------------------------------------------------------------

_PATIENTS = (
    "(SELECT patient_id, any_value(gender) AS sex, min(birth_date) AS birth_date "
    "FROM patients GROUP BY patient_id)"
)
_UNIVERSE = "SELECT DISTINCT patient_id FROM patients"


@dataclass
class _Ctx:
    con: duckdb.DuckDBPyConnection
    index: date
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Sql:
    """SQL text and its parameters, in order."""

    text: str
    params: list[Any] = field(default_factory=list)


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _code_match(codes: list[str], text: str | None, params: list[Any]) -> str:
    exact = [c for c in codes if not c.endswith("*")]
    prefixes = [c[:-1] for c in codes if c.endswith("*")]
    parts = []
    if exact:
        parts.append("list_contains(?, code)")
        params.append(exact)
    for p in prefixes:
        parts.append("code LIKE ? ESCAPE '\\'")
        params.append(_escape_like(p) + "%")
    if text:
        parts.append("display ILIKE ? ESCAPE '\\'")
        params.append("%" + _escape_like(text) + "%")
    return "(" + " OR ".join(parts) + ")"


def _window(col: str, window: Window | None, ctx: _Ctx, params: list[Any]) -> str:
    if window is None:
        return ""
    lo, hi = window.bounds(ctx.index)
    out = ""
    if lo is not None:
        out += f" AND {col} >= ?"
        params.append(lo)
    if hi is not None:
        out += f" AND {col} < ?"
        params.append(hi)
    return out


def _system(system: str | None, params: list[Any]) -> str:
    if not system:
        return ""
    params.append(CODE_SYSTEMS.get(system.lower(), system))
    return " AND code_system = ?"


def _leaf_rows(c: Criterion, ctx: _Ctx) -> _Sql:
    """SQL giving ``patient_id, resource_id, evidence`` rows that satisfy a leaf criterion."""
    params: list[Any] = []
    if isinstance(c, ConditionCriterion):
        where = _code_match(c.codes, c.text, params) + _system(c.system, params)
        where += _window("onset", c.window, ctx, params)
        if c.active_at_index:
            where += " AND (onset IS NULL OR onset < ?) AND (abatement IS NULL OR abatement >= ?)"
            idx = _ts(ctx.index + timedelta(days=1))
            params += [idx, idx]
        return _Sql(
            "SELECT patient_id, resource_id, 'condition ' || code || ' ' || coalesce(display, '') || "
            "coalesce(' (onset ' || strftime(onset, '%Y-%m-%d') || ')', '') AS evidence "
            f"FROM conditions WHERE {where}",
            params,
        )
    if isinstance(c, MedicationCriterion):
        where = _code_match(c.codes, c.text, params) + _system(c.system, params)
        where += _window("authored", c.window, ctx, params)
        if c.status:
            where += " AND list_contains(?, lower(status))"
            params.append([s.lower() for s in c.status])
        return _Sql(
            "SELECT patient_id, resource_id, 'medication ' || coalesce(code, '') || ' ' || "
            "coalesce(display, '') || coalesce(' (' || strftime(authored, '%Y-%m-%d') || ')', '') AS evidence "
            f"FROM medications WHERE {where}",
            params,
        )
    if isinstance(c, LabCriterion):
        return _lab_rows(c, ctx)
    if isinstance(c, AgeCriterion):
        bounds: list[str] = []
        if c.min is not None:
            bounds.append("age >= ?")
            params.append(c.min)
        if c.max is not None:
            bounds.append("age <= ?")
            params.append(c.max)
        return _Sql(
            "SELECT patient_id, NULL AS resource_id, 'age ' || age AS evidence FROM ("
            "SELECT patient_id, CAST(date_part('year', age(CAST(? AS TIMESTAMP), CAST(birth_date AS TIMESTAMP))) "
            f"AS INTEGER) AS age FROM {_PATIENTS}) WHERE " + " AND ".join(bounds),
            [_ts(ctx.index), *params],
        )
    if isinstance(c, SexCriterion):
        return _Sql(
            "SELECT patient_id, NULL AS resource_id, 'sex ' || sex AS evidence "
            f"FROM {_PATIENTS} WHERE list_contains(?, lower(sex))",
            [list(c.values)],
        )
    if isinstance(c, EncounterCriterion):
        where = "TRUE" + _window("start", c.window, ctx, params)
        if c.classes:
            where += " AND list_contains(?, lower(class))"
            params.append([x.lower() for x in c.classes])
        params.append(c.min_count)
        return _Sql(
            "SELECT patient_id, resource_id, evidence FROM ("
            "SELECT patient_id, resource_id, 'encounter ' || coalesce(class, '') || ' ' || "
            "coalesce(strftime(start, '%Y-%m-%d'), '') AS evidence, "
            f"count(*) OVER (PARTITION BY patient_id) AS n FROM encounters WHERE {where}) WHERE n >= ?",
            params,
        )
    raise CohortError(f"criterion type {c.type!r} has no rows of its own")  # pragma: no cover


_OBS = (
    "SELECT patient_id, resource_id, COALESCE(component, code) AS mcode, "
    "COALESCE(NULLIF(unit_code, ''), NULLIF(unit, '')) AS munit, value_num, effective "
    "FROM observations WHERE value_num IS NOT NULL AND list_contains(?, COALESCE(component, code))"
)


def _lab_rows(c: LabCriterion, ctx: _Ctx) -> _Sql:
    """Lab rows meeting the threshold, converted into each stored unit (conversions are increasing)."""
    pairs = ctx.con.execute(
        "SELECT DISTINCT mcode, munit, count(*) FROM (" + _OBS + ") GROUP BY ALL ORDER BY ALL", [c.codes]
    ).fetchall()
    conds: list[str] = []
    cparams: list[Any] = []
    for code, unit, n in pairs:
        row_unit = unit
        if row_unit is None:
            a = analyte(code)
            row_unit = a.implied_unit if a is not None else None
        try:
            if row_unit is None:
                raise UnitError(f"no unit (code {code})")
            threshold = converter(c.unit, row_unit, code)(c.value)
        except UnitError:
            ctx.warnings.append(
                f"{describe(c)}: {n} result(s) of {code} in unit {unit or '(none)'} cannot be compared "
                f"with {c.unit} and were left out"
            )
            continue
        conds.append(f"(mcode = ? AND munit IS NOT DISTINCT FROM ? AND value_num {c.op} ?)")
        cparams += [code, unit, threshold]
    params: list[Any] = [c.codes]
    base = _OBS + _window("effective", c.window, ctx, params)
    if not conds:
        return _Sql("SELECT NULL AS patient_id, NULL AS resource_id, NULL AS evidence WHERE FALSE", [])
    usable = " OR ".join("(mcode = ? AND munit IS NOT DISTINCT FROM ?)" for _ in range(len(conds)))
    uparams: list[Any] = []
    for i in range(0, len(cparams), 3):
        uparams += cparams[i : i + 2]
    evidence = (
        "mcode || ' = ' || CAST(round(value_num, 4) AS VARCHAR) || coalesce(' ' || munit, '') || "
        "coalesce(' (' || strftime(effective, '%Y-%m-%d') || ')', '') AS evidence"
    )
    if c.which == "any":
        text = f"SELECT patient_id, resource_id, {evidence} FROM ({base}) WHERE ({usable}) AND ({' OR '.join(conds)})"
    else:
        # The latest comparable result decides; results in units we cannot compare are skipped.
        text = (
            f"SELECT patient_id, resource_id, {evidence} FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY patient_id ORDER BY effective DESC NULLS LAST, "
            f"resource_id DESC) AS rn FROM ({base}) WHERE ({usable})) WHERE rn = 1 AND ({' OR '.join(conds)})"
        )
    return _Sql(text, params + uparams + cparams)


def compile_criterion(c: Criterion, ctx: _Ctx) -> _Sql:
    """SQL giving the ``patient_id`` set that satisfies ``c``."""
    if isinstance(c, AndCriterion | OrCriterion):
        parts = [compile_criterion(x, ctx) for x in c.criteria]
        op = " INTERSECT " if isinstance(c, AndCriterion) else " UNION "
        return _Sql(
            op.join(f"(SELECT patient_id FROM ({p.text}))" for p in parts),
            [v for p in parts for v in p.params],
        )
    if isinstance(c, NotCriterion):
        inner = compile_criterion(c.criterion, ctx)
        return _Sql(f"({_UNIVERSE}) EXCEPT (SELECT patient_id FROM ({inner.text}))", inner.params)
    rows = _leaf_rows(c, ctx)
    return _Sql(f"SELECT DISTINCT patient_id FROM ({rows.text}) WHERE patient_id IS NOT NULL", rows.params)


def _positive_leaves(c: Criterion) -> list[Criterion]:
    if isinstance(c, AndCriterion | OrCriterion):
        return [leaf for x in c.criteria for leaf in _positive_leaves(x)]
    if isinstance(c, NotCriterion):
        return []  # absence has no supporting record
    return [c]


# -- running ----------------------------------------------------------------------------------


@dataclass
class CohortResult:
    """The outcome of running a definition: attrition, patients with evidence, the SQL, warnings."""

    definition: CohortDefinition
    index_date: date
    attrition: pd.DataFrame
    patients: pd.DataFrame
    sql: str
    params: list[Any]
    warnings: list[str]

    @property
    def n(self) -> int:
        """Number of patients in the cohort."""
        return len(self.patients)

    def to_dict(self) -> dict[str, Any]:
        """Attrition, N and warnings (patients are left to the caller, who may pseudonymise them)."""
        return {
            "name": self.definition.name,
            "index_date": self.index_date.isoformat(),
            "attrition": [
                {"criterion": str(crit), "n": int(n)}
                for crit, n in zip(self.attrition["criterion"].tolist(), self.attrition["n"].tolist())
            ],
            "n": self.n,
            "warnings": list(self.warnings),
        }


def run_cohort(
    con: duckdb.DuckDBPyConnection,
    definition: CohortDefinition | dict[str, Any] | str | Path,
    *,
    index_date: date | None = None,
) -> CohortResult:
    """Run a cohort definition: attrition after each top-level criterion and the matching patients.

    ``index_date`` (default: the definition's, else today) anchors ages and relative windows.
    The patients frame has ``patient_id``, ``sex``, ``age`` (at the index date), ``evidence``
    (criterion -> matched facts) and ``record_ids`` (resource ids of the supporting records).
    """
    if isinstance(definition, Path):
        definition = load_definition(definition)
    elif not isinstance(definition, CohortDefinition):
        definition = parse_definition(definition)
    index = index_date or definition.index_date or date.today()
    ctx = _Ctx(con=con, index=index)
    steps = [compile_criterion(c, ctx) for c in definition.criteria]
    try:
        total = con.execute(f"SELECT count(*) FROM ({_UNIVERSE})").fetchone()
        attrition = [{"step": 0, "criterion": "all patients", "n": int(total[0]) if total else 0}]
        sql = _UNIVERSE
        params: list[Any] = []
        for i, (c, step) in enumerate(zip(definition.criteria, steps), start=1):
            sql = f"({sql}) INTERSECT (SELECT patient_id FROM ({step.text}))"
            params = params + step.params
            row = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()
            attrition.append({"step": i, "criterion": describe(c), "n": int(row[0]) if row else 0})
        ids = [
            r[0]
            for r in con.execute(f"SELECT patient_id FROM ({sql}) ORDER BY patient_id", params).fetchall()
        ]
        patients = _patient_frame(con, definition, ids, ctx)
    except duckdb.Error as exc:
        raise CohortError(
            f"cohort {definition.name!r}: the records database could not run it ({exc})"
        ) from exc
    return CohortResult(
        definition=definition,
        index_date=index,
        attrition=pd.DataFrame(attrition, columns=["step", "criterion", "n"]),
        patients=patients,
        sql=sql,
        params=params,
        warnings=ctx.warnings,
    )


def _patient_frame(
    con: duckdb.DuckDBPyConnection, definition: CohortDefinition, ids: list[str], ctx: _Ctx
) -> pd.DataFrame:
    cols = ["patient_id", "sex", "age", "evidence", "record_ids"]
    if not ids:
        return pd.DataFrame(columns=cols)
    base = con.execute(
        "SELECT patient_id, sex, CAST(date_part('year', age(CAST(? AS TIMESTAMP), "
        f"CAST(birth_date AS TIMESTAMP))) AS INTEGER) AS age FROM {_PATIENTS} "
        "WHERE list_contains(?, patient_id) ORDER BY patient_id",
        [_ts(ctx.index), ids],
    ).df()
    evidence: dict[str, dict[str, list[str]]] = {pid: {} for pid in ids}
    records: dict[str, set[str]] = {pid: set() for pid in ids}
    for top in definition.criteria:
        name = describe(top)
        for leaf in _positive_leaves(top):
            rows = _leaf_rows(leaf, ctx)
            found = con.execute(
                f"SELECT patient_id, resource_id, evidence FROM ({rows.text}) "
                "WHERE list_contains(?, patient_id) ORDER BY patient_id, evidence",
                [*rows.params, ids],
            ).fetchall()
            for pid, rid, ev in found:
                evidence[pid].setdefault(name, [])
                if ev is not None and ev not in evidence[pid][name]:
                    evidence[pid][name].append(ev)
                if rid is not None:
                    records[pid].add(str(rid))
    base["evidence"] = pd.Series([evidence[p] for p in base["patient_id"]], index=base.index, dtype=object)
    base["record_ids"] = pd.Series(
        [sorted(records[p]) for p in base["patient_id"]], index=base.index, dtype=object
    )
    return base[cols]


# -- plain SQL for power users ----------------------------------------------------------------

# Table functions that read files, and quoted names DuckDB would open as files ("FROM 'x.csv'").
# A SELECT has no other way to reach the file system; statements are refused by type.
_FILE_FUNCTIONS = re.compile(
    r"\b(read_\w+|glob|parquet_\w+|sniff_csv|iceberg_\w+|delta_scan|sqlite_scan|postgres_scan|"
    r"mysql_scan|query_table|query)\s*\(",
    re.IGNORECASE,
)
_QUOTED_SOURCE = re.compile(r"(\bfrom|\bjoin)\s*(\(\s*)*'", re.IGNORECASE)
_PATHLIKE = re.compile(
    r"""(['"][^'"]*\.(csv|tsv|parquet|json|jsonl|ndjson|txt|db|duckdb|sqlite|xlsx?)(\.(gz|zst))?['"])|("[^"]*[/\\][^"]*")""",
    re.IGNORECASE,
)


def run_sql(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None, *, limit: int | None = None
) -> pd.DataFrame:
    """Run one read-only SELECT on the records tables and return its rows.

    Anything but a single SELECT (or a statement that touches files, such as ``read_csv``,
    ``COPY`` or ``ATTACH``) raises CohortError before anything runs.
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise CohortError("empty SQL; give one SELECT statement")
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise CohortError(f"SQL does not parse: {exc}") from None
    if len(statements) != 1:
        raise CohortError(f"give exactly one SELECT statement (got {len(statements)})")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise CohortError(
            f"only SELECT is allowed here (got {statements[0].type.name}); the data is read-only"
        )
    bare = _strip_strings(text)
    if _FILE_FUNCTIONS.search(bare) or _QUOTED_SOURCE.search(text) or _PATHLIKE.search(text):
        raise CohortError(
            "queries may only read the records tables: file-reading functions and quoted file names are refused"
        )
    if limit is not None:
        text = f"SELECT * FROM ({text}) LIMIT {int(limit)}"
    # The caller's connection as is: a governed connection's temp views live on it, and a
    # SELECT that passed the checks above cannot change the database.
    try:
        return con.execute(text, params or []).df()
    except duckdb.Error as exc:
        raise CohortError(f"SQL failed: {exc}") from None


def _strip_strings(sql: str) -> str:
    """SQL with string literals blanked, so a word inside quotes is not taken for a function."""
    return re.sub(r"'(?:[^']|'')*'", "''", sql)
