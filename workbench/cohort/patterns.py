"""Chronic-pattern review: rule-based detectors written as data (``patterns.json``).

Each detector names the measures it reads, thresholds with a reference for each, and how
readings combine (``count`` of qualifying results on separate dates, a ``run`` of qualifying
results spanning enough days with none normal in between, or the ``latest`` reading). A
finding is a pattern in the records worth discussing with a clinician, never a diagnosis, and
it lists the record ids (``resource_id``) that support it.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.cohort.labs.results import lab_results
from workbench.cohort.labs.units import canonical_unit, converter, tidy
from workbench.errors import RecordsError, UnitError

__all__ = ["Finding", "PatternSet", "load_patterns", "review_cohort", "review_patterns"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TestSpec(_Model):
    """A measure a detector reads: LOINC codes and the unit its thresholds are written in."""

    label: str
    codes: list[str] = Field(min_length=1)
    unit: str


class Condition(_Model):
    """A threshold on one test: ``op`` with ``value``, or ``between`` = min <= v < max."""

    test: str
    op: Literal["<", "<=", ">", ">=", "between"]
    value: float | None = None
    min: float | None = None
    max: float | None = None
    reference: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if self.op == "between" and (self.min is None or self.max is None):
            raise ValueError("'between' needs 'min' and 'max'")
        if self.op != "between" and self.value is None:
            raise ValueError(f"op {self.op!r} needs 'value'")
        return self

    def holds(self, v: np.ndarray) -> np.ndarray:
        """Which values (in the test's unit) meet this condition."""
        if self.op == "between":
            assert self.min is not None and self.max is not None
            return (v >= self.min) & (v < self.max)
        return _OPS[self.op](v, float(self.value or 0.0))

    def text(self, unit: str) -> str:
        """The threshold as text, e.g. ``">= 6.5 %"``."""
        if self.op == "between":
            return f"{self.min:g} to below {self.max:g} {unit}"
        return f"{self.op} {self.value:g} {unit}"


class Grade(_Model):
    """A label given by the latest qualifying value (e.g. KDIGO G3a)."""

    label: str
    op: Literal["<", "<=", ">", ">="]
    value: float
    reference: str = Field(min_length=1)


class Stage(_Model):
    """One stage of a detector; the first stage (most severe first) that holds is reported."""

    stage: str
    aggregate: Literal["count", "run", "latest"]
    any_of: list[Condition] = Field(min_length=1)
    rule: str
    reference: str
    count_by: Literal["date", "date_test"] = "date"
    min_count: int = Field(default=1, ge=1)
    min_span_days: int = Field(default=0, ge=0)
    grades: list[Grade] = Field(default_factory=list)


class Pattern(_Model):
    """A detector: an id, a label, the stages it reports, and an optional age floor."""

    id: str
    label: str
    stages: list[Stage] = Field(min_length=1)
    min_age: float | None = None
    superseded_by: str | None = None


class PatternSet(_Model):
    """The whole data file: shared test definitions and the detectors."""

    schema_version: Literal[1]
    statement: str
    tests: dict[str, TestSpec]
    patterns: list[Pattern]

    @model_validator(mode="after")
    def _check_refs(self) -> PatternSet:
        ids = {p.id for p in self.patterns}
        for p in self.patterns:
            if p.superseded_by is not None and p.superseded_by not in ids:
                raise ValueError(f"pattern {p.id}: superseded_by {p.superseded_by!r} is not a pattern id")
            for s in p.stages:
                for c in s.any_of:
                    if c.test not in self.tests:
                        raise ValueError(f"pattern {p.id}: unknown test {c.test!r}")
        for name, t in self.tests.items():
            try:
                canonical_unit(t.unit)
            except UnitError as exc:
                raise ValueError(f"test {name}: {exc}") from None
        return self

    def codes(self) -> list[str]:
        """Every LOINC code any detector reads."""
        return sorted({c for t in self.tests.values() for c in t.codes})


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compare(v: float, op: str, threshold: float) -> bool:
    return bool(_OPS[op](v, threshold))


def load_patterns(path: Path | str | None = None) -> PatternSet:
    """Load and validate a detector file (default: the shipped ``patterns.json``)."""
    if path is None:
        return _default_patterns()
    return _parse(Path(path).read_text(encoding="utf-8"), str(path))


@cache
def _default_patterns() -> PatternSet:
    text = resources.files("workbench.cohort").joinpath("patterns.json").read_text(encoding="utf-8")
    return _parse(text, "patterns.json")


def _parse(text: str, name: str) -> PatternSet:
    try:
        return PatternSet.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise RecordsError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise RecordsError(f"{name}: invalid pattern definition at {loc}: {err['msg']}") from None


@dataclass(slots=True)
class Finding:
    """A pattern in one patient's records worth discussing with a clinician (not a diagnosis)."""

    patient_id: str
    pattern_id: str
    label: str
    stage: str
    rule: str
    references: list[str]
    evidence: list[dict[str, Any]]
    record_ids: list[str]
    first_date: str | None
    last_date: str | None
    statement: str
    grade: str | None = None
    thresholds: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _readings(df: pd.DataFrame, ps: PatternSet) -> pd.DataFrame:
    """One row per (reading, test) with the value in the test's unit; unconverted rows left out."""
    frames = []
    ok = df[df["unit_error"].isna()]
    for name, t in ps.tests.items():
        sub = ok[ok["code"].isin(t.codes)]
        if sub.empty:
            continue
        vals = []
        for code, unit, v in zip(sub["code"], sub["unit_norm"], sub["value_norm"]):
            try:
                vals.append(tidy(converter(unit, t.unit, code)(float(v))))
            except UnitError:
                vals.append(float("nan"))
        # Only the columns the detectors read: boolean selection copies every column.
        part = sub[["patient_id", "resource_id", "code", "effective", "age"]].assign(
            test=name, tvalue=vals, tunit=t.unit
        )
        frames.append(part[part["tvalue"].notna()])
    if not frames:
        return pd.DataFrame(
            columns=["patient_id", "resource_id", "code", "effective", "age", "test", "tvalue", "tunit"]
        )
    out = pd.concat(frames, ignore_index=True)
    out = out[out["effective"].notna()]  # an undated reading cannot be placed in a series
    return out.sort_values(["effective", "resource_id", "test"], kind="stable").reset_index(drop=True)


def _evidence(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "resource_id": str(rid),
            "code": str(code),
            "test": str(test),
            "date": pd.Timestamp(eff).isoformat(),
            "value": round(float(val), 4),
            "unit": str(unit),
        }
        for rid, code, test, eff, val, unit in zip(
            rows["resource_id"], rows["code"], rows["test"], rows["effective"], rows["tvalue"], rows["tunit"]
        )
    ]


@dataclass(slots=True)
class _Arrays:
    """One patient's readings as arrays, in time order (what the detectors scan)."""

    test: np.ndarray
    value: np.ndarray
    time: np.ndarray
    day: np.ndarray
    age: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame) -> _Arrays:
        time = pd.to_datetime(rows["effective"]).to_numpy(dtype="datetime64[ns]")
        return cls(
            test=rows["test"].to_numpy(dtype=object),
            value=rows["tvalue"].to_numpy(dtype=float),
            time=time,
            day=time.astype("datetime64[D]"),
            age=pd.to_numeric(rows["age"], errors="coerce").to_numpy(dtype=float),
        )


def _eval_stage(a: _Arrays, keep: np.ndarray, stage: Stage) -> np.ndarray | None:
    """Positions of the readings that make ``stage`` hold, or None when it does not."""
    sel = keep & np.isin(a.test, [c.test for c in stage.any_of])
    if not sel.any():
        return None
    q = np.zeros(len(a.test), dtype=bool)
    for c in stage.any_of:
        q |= (a.test == c.test) & c.holds(a.value)
    q &= sel
    if stage.aggregate == "latest":
        last = a.time[sel].max()
        idx = np.flatnonzero(sel & (a.time == last))
        hit = idx[q[idx]]
        return hit if hit.size else None
    if stage.aggregate == "count":
        hit = np.flatnonzero(q)
        if stage.count_by == "date":
            n = len(set(a.day[hit].tolist()))
        else:
            n = len(set(zip(a.day[hit].tolist(), a.test[hit].tolist())))
        return hit if n >= stage.min_count else None
    # run: consecutive qualifying readings (by time) with no non-qualifying one in between; a
    # reading taken at the same time as a qualifying one does not break the run. The most
    # recent run long enough wins: it describes the current state.
    best: np.ndarray | None = None
    run: list[int] = []
    idx = np.flatnonzero(sel)
    times = a.time[idx]
    for t in np.unique(times):
        group = idx[times == t]
        if q[group].all():
            run.extend(group.tolist())
            continue
        best = _long_enough(a, run, stage, best)
        run = []
    return _long_enough(a, run, stage, best)


def _long_enough(a: _Arrays, run: list[int], stage: Stage, best: np.ndarray | None) -> np.ndarray | None:
    if not run:
        return best
    span = (a.time[run[-1]] - a.time[run[0]]) / np.timedelta64(1, "D")
    return np.asarray(run) if span >= stage.min_span_days else best


def _grade(stage: Stage, a: _Arrays, hit: np.ndarray) -> Grade | None:
    if not stage.grades:
        return None
    last = float(a.value[hit[np.argmax(a.time[hit])]])
    for g in stage.grades:
        if _compare(last, g.op, g.value):
            return g
    return None


def _review_rows(patient_id: str, rows: pd.DataFrame, ps: PatternSet) -> list[Finding]:
    found: dict[str, Finding] = {}
    rows = rows.reset_index(drop=True)
    a = _Arrays.of(rows)
    everyone = np.ones(len(rows), dtype=bool)
    for p in ps.patterns:
        keep = everyone
        if p.min_age is not None:
            # Unknown age: the reading is kept (adults are assumed, as for reference ranges).
            keep = np.isnan(a.age) | (a.age >= p.min_age)
        for stage in p.stages:
            pos = _eval_stage(a, keep, stage)
            if pos is None:
                continue
            grade = _grade(stage, a, pos)
            hit = rows.iloc[pos]
            refs = [c.reference for c in stage.any_of] + [stage.reference]
            if grade is not None:
                refs.append(grade.reference)
            dates = pd.to_datetime(hit["effective"])
            found[p.id] = Finding(
                patient_id=patient_id,
                pattern_id=p.id,
                label=p.label,
                stage=grade.label if grade is not None else stage.stage,
                grade=grade.label if grade is not None else None,
                rule=stage.rule,
                references=list(dict.fromkeys(refs)),
                thresholds=[
                    f"{ps.tests[c.test].label} {c.text(ps.tests[c.test].unit)}" for c in stage.any_of
                ],
                evidence=_evidence(hit),
                record_ids=sorted(set(hit["resource_id"].astype(str))),
                first_date=dates.min().isoformat(),
                last_date=dates.max().isoformat(),
                statement=ps.statement,
            )
            break
    # A milder pattern is not repeated when the stronger one it leads to is present.
    return [
        f
        for f in found.values()
        if not ((sup := next(p.superseded_by for p in ps.patterns if p.id == f.pattern_id)) and sup in found)
    ]


def review_patterns(
    con: duckdb.DuckDBPyConnection, patient_id: str, *, patterns: PatternSet | None = None
) -> list[Finding]:
    """Findings for one patient: patterns in the records worth discussing with a clinician."""
    ps = patterns or load_patterns()
    rows = _readings(lab_results(con, patient_id, ps.codes()), ps)
    return _review_rows(patient_id, rows, ps)


def review_cohort(
    con: duckdb.DuckDBPyConnection,
    patient_ids: Iterable[str] | None = None,
    *,
    patterns: PatternSet | None = None,
) -> pd.DataFrame:
    """One row per finding over many patients (all patients when ``patient_ids`` is None)."""
    ps = patterns or load_patterns()
    ids = None if patient_ids is None else list(patient_ids)
    rows = _readings(lab_results(con, ids, ps.codes()), ps)
    out: list[dict[str, Any]] = []
    for pid, group in rows.groupby("patient_id", sort=True):
        out.extend(f.to_dict() for f in _review_rows(str(pid), group, ps))
    cols = list(Finding.__dataclass_fields__)
    return pd.DataFrame(out, columns=cols)
