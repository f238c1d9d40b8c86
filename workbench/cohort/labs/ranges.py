"""Reference ranges (from ``reference_ranges.csv``) and low/normal/high/critical flags."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from workbench.cohort.labs.units import analyte, canonical_unit, convert
from workbench.errors import UnitError

__all__ = ["Flag", "ReferenceRange", "flag", "flag_value", "reference_range", "reference_ranges"]

Flag = Literal["low", "normal", "high", "critical"]

#: When the age is unknown an adult is assumed; this age picks the adult rows.
_ASSUMED_ADULT_AGE = 40.0


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    """One row of the reference-range table, in the code's canonical unit."""

    code: str
    unit: str
    low: float | None
    high: float | None
    upper_exclusive: bool
    critical_low: float | None
    critical_high: float | None
    source: str
    critical_source: str
    sex: str | None = None
    age_min: float | None = None
    age_max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON and DataFrames)."""
        return asdict(self)

    def applies(self, sex: str | None, age: float | None) -> bool:
        """Whether this row is the range for a person of ``sex`` and ``age`` (years)."""
        if self.sex is not None and (sex or "").lower() != self.sex:
            return False
        a = _ASSUMED_ADULT_AGE if age is None or math.isnan(age) else age
        if self.age_min is not None and a < self.age_min:
            return False
        return not (self.age_max is not None and a >= self.age_max)

    def text(self) -> str:
        """A short human-readable form such as ``"135-145 mmol/L"`` or ``"< 200 mg/dL"``."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g}-{self.high:g} {self.unit}"
        if self.high is not None:
            return f"{'<' if self.upper_exclusive else '<='} {self.high:g} {self.unit}"
        if self.low is not None:
            return f">= {self.low:g} {self.unit}"
        return ""


def _num(s: str) -> float | None:
    return float(s) if s.strip() else None


@cache
def reference_ranges() -> tuple[ReferenceRange, ...]:
    """Every reference-range row shipped with the workbench (one per code and sex/age group)."""
    text = (
        resources.files("workbench.cohort.labs").joinpath("reference_ranges.csv").read_text(encoding="utf-8")
    )
    rows: list[ReferenceRange] = []
    for row in csv.DictReader(line for line in text.splitlines() if not line.startswith("#")):
        unit = canonical_unit(row["unit"])
        for code in row["code"].split("|"):
            a = analyte(code)
            if a is not None and a.canonical_unit != unit:
                raise UnitError(
                    f"reference_ranges.csv: range for code {code} is in {unit!r} but the code's "
                    f"canonical unit is {a.canonical_unit!r}; fix the data file"
                )
            rows.append(
                ReferenceRange(
                    code=code,
                    unit=unit,
                    low=_num(row["low"]),
                    high=_num(row["high"]),
                    upper_exclusive=row["bounds"].strip() == "[)",
                    critical_low=_num(row["critical_low"]),
                    critical_high=_num(row["critical_high"]),
                    source=row["source"],
                    critical_source=row["critical_source"],
                    sex=row["sex"].strip().lower() or None,
                    age_min=_num(row["age_min"]),
                    age_max=_num(row["age_max"]),
                )
            )
    return tuple(rows)


@cache
def _by_code() -> dict[str, tuple[ReferenceRange, ...]]:
    out: dict[str, list[ReferenceRange]] = {}
    for r in reference_ranges():
        out.setdefault(r.code, []).append(r)
    return {k: tuple(v) for k, v in out.items()}


def reference_range(code: str, sex: str | None = None, age: float | None = None) -> ReferenceRange | None:
    """The reference range for LOINC ``code`` for this sex and age (years), or None.

    Sex-specific rows need the sex; with ``sex=None`` only rows for any sex match. An unknown
    age is taken to be an adult's.
    """
    for r in _by_code().get(str(code), ()):
        if r.applies(sex, age):
            return r
    return None


def flag_value(value: float, rng: ReferenceRange) -> Flag:
    """Classify ``value`` (already in ``rng.unit``) against ``rng``."""
    if rng.critical_low is not None and value < rng.critical_low:
        return "critical"
    if rng.critical_high is not None and value > rng.critical_high:
        return "critical"
    if rng.low is not None and value < rng.low:
        return "low"
    if rng.high is not None and (value >= rng.high if rng.upper_exclusive else value > rng.high):
        return "high"
    return "normal"


def flag(
    code: str, value: float, unit: str | None, sex: str | None = None, age: float | None = None
) -> Flag | None:
    """low/normal/high/critical for a result of ``code`` in ``unit``; None when no range applies.

    Raises UnitError when the unit is unknown or cannot be converted to the range's unit.
    """
    rng = reference_range(code, sex, age)
    if rng is None:
        return None
    return flag_value(convert(value, unit, rng.unit, code), rng)
