"""UCUM unit spellings and conversions, including analyte-specific ones.

Every unit is first canonicalised to one UCUM spelling (``"mg/dl"`` and ``"mg/dL"`` are
the same unit), then converted within its dimension by a factor (or an affine map for
temperatures). Conversions between mass and substance concentration (mg/dL <-> mmol/L)
need the analyte's molar mass, and HbA1c % <-> mmol/mol needs the IFCC master equation;
both are looked up by LOINC code in ``analytes.csv``.

All conversions are strictly increasing maps, so a threshold converted into another unit
keeps its meaning (the cohort builder relies on this to compile lab criteria into SQL).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from workbench.errors import UnitError

__all__ = [
    "Analyte",
    "analyte",
    "canonical_unit",
    "canonical_unit_for",
    "convert",
    "converter",
    "tidy",
    "normalize",
]


@dataclass(frozen=True, slots=True)
class _Unit:
    """A canonical UCUM unit: its dimension and the factor (and offset) to the dimension's base."""

    code: str
    dimension: str
    factor: float
    offset: float = 0.0  # base = value * factor + offset (only temperatures use it)


# Canonical units by dimension. Base units: g/L, mol/L, /L, kg, m, K, /s, 1, Pa, kg/m2, L, g, U/L ...
_UNITS: dict[str, _Unit] = {
    u.code: u
    for u in [
        # mass concentration (base g/L)
        _Unit("g/L", "mass_conc", 1.0),
        _Unit("g/dL", "mass_conc", 10.0),
        _Unit("mg/dL", "mass_conc", 0.01),
        _Unit("mg/L", "mass_conc", 1e-3),
        _Unit("ug/dL", "mass_conc", 1e-5),
        _Unit("ug/L", "mass_conc", 1e-6),
        _Unit("ng/mL", "mass_conc", 1e-6),
        _Unit("ng/dL", "mass_conc", 1e-8),
        _Unit("ng/L", "mass_conc", 1e-9),
        _Unit("pg/mL", "mass_conc", 1e-9),
        # substance concentration (base mol/L)
        _Unit("mol/L", "subst_conc", 1.0),
        _Unit("mmol/L", "subst_conc", 1e-3),
        _Unit("umol/L", "subst_conc", 1e-6),
        _Unit("nmol/L", "subst_conc", 1e-9),
        _Unit("pmol/L", "subst_conc", 1e-12),
        # equivalents: equal to mmol/L only for monovalent ions, so analytes.csv aliases it per code
        _Unit("meq/L", "equiv_conc", 1.0),
        # number concentration (base /L)
        _Unit("/L", "num_conc", 1.0),
        _Unit("/uL", "num_conc", 1e6),
        _Unit("10*3/uL", "num_conc", 1e9),
        _Unit("10*6/uL", "num_conc", 1e12),
        _Unit("10*9/L", "num_conc", 1e9),
        _Unit("10*12/L", "num_conc", 1e12),
        # mass (base kg)
        _Unit("kg", "mass", 1.0),
        _Unit("g", "mass", 1e-3),
        _Unit("[lb_av]", "mass", 0.45359237),
        _Unit("[oz_av]", "mass", 0.028349523125),
        # length (base m)
        _Unit("m", "length", 1.0),
        _Unit("cm", "length", 0.01),
        _Unit("mm", "length", 1e-3),
        _Unit("[in_i]", "length", 0.0254),
        _Unit("[ft_i]", "length", 0.3048),
        # temperature (base K)
        _Unit("Cel", "temperature", 1.0, 273.15),
        _Unit("[degF]", "temperature", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
        _Unit("K", "temperature", 1.0),
        # frequency (base /min)
        _Unit("/min", "rate", 1.0),
        _Unit("/s", "rate", 60.0),
        _Unit("/h", "rate", 1.0 / 60.0),
        # pressure (base Pa)
        _Unit("mm[Hg]", "pressure", 133.322387415),
        _Unit("kPa", "pressure", 1000.0),
        # dimensionless fractions (base 1)
        _Unit("%", "fraction", 0.01),
        _Unit("1", "fraction", 1.0),
        # others that appear in labs and vitals
        _Unit("kg/m2", "area_density", 1.0),
        _Unit("mL/min/{1.73_m2}", "egfr", 1.0),
        _Unit("mL/min", "flow", 1.0),
        _Unit("L", "volume", 1.0),
        _Unit("dL", "volume", 0.1),
        _Unit("mL", "volume", 1e-3),
        _Unit("fL", "volume", 1e-15),
        _Unit("pg", "entitic_mass", 1e-12),
        _Unit("U/L", "catalytic_conc", 1.0),
        _Unit("IU/L", "arbitrary_conc", 1.0),
        _Unit("mIU/L", "arbitrary_conc", 1e-3),
        _Unit("kU/L", "ku_conc", 1.0),
        _Unit("mg/g", "mass_ratio", 1e-3),
        _Unit("mg/mmol", "mass_per_subst", 1.0),
        _Unit("mmol/mol", "subst_ratio", 1e-3),
        _Unit("[pH]", "ph", 1.0),
        _Unit("s", "time", 1.0),
        _Unit("min", "time", 60.0),
        _Unit("h", "time", 3600.0),
        _Unit("d", "time", 86400.0),
        _Unit("a", "time", 365.25 * 86400.0),
    ]
}

# Spellings seen in EHR exports, wellness apps and hand-typed lab sheets, keyed by a
# folded form (see _fold). Values are canonical codes in _UNITS.
_ALIASES: dict[str, str] = {
    "mg/dl": "mg/dL",
    "mgdl": "mg/dL",
    "mg%": "mg/dL",
    "g/dl": "g/dL",
    "gm/dl": "g/dL",
    "g/l": "g/L",
    "mg/l": "mg/L",
    "ug/dl": "ug/dL",
    "mcg/dl": "ug/dL",
    "ug/l": "ug/L",
    "mcg/l": "ug/L",
    "ng/ml": "ng/mL",
    "ng/dl": "ng/dL",
    "ng/l": "ng/L",
    "pg/ml": "pg/mL",
    "mol/l": "mol/L",
    "mmol/l": "mmol/L",
    "meq/l": "meq/L",
    "umol/l": "umol/L",
    "mcmol/l": "umol/L",
    "nmol/l": "nmol/L",
    "pmol/l": "pmol/L",
    "/l": "/L",
    "/ul": "/uL",
    "cells/ul": "/uL",
    "/mm3": "/uL",
    "10*3/ul": "10*3/uL",
    "10^3/ul": "10*3/uL",
    "x10^3/ul": "10*3/uL",
    "x10e3/ul": "10*3/uL",
    "10e3/ul": "10*3/uL",
    "k/ul": "10*3/uL",
    "thou/ul": "10*3/uL",
    "10*3/mm3": "10*3/uL",
    "10*9/l": "10*9/L",
    "10^9/l": "10*9/L",
    "x10^9/l": "10*9/L",
    "x10e9/l": "10*9/L",
    "10*6/ul": "10*6/uL",
    "10^6/ul": "10*6/uL",
    "x10^6/ul": "10*6/uL",
    "x10e6/ul": "10*6/uL",
    "m/ul": "10*6/uL",
    "mill/ul": "10*6/uL",
    "10*12/l": "10*12/L",
    "10^12/l": "10*12/L",
    "x10^12/l": "10*12/L",
    "kg": "kg",
    "kilogram": "kg",
    "kilograms": "kg",
    "g": "g",
    "gram": "g",
    "grams": "g",
    "[lb_av]": "[lb_av]",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "pound": "[lb_av]",
    "pounds": "[lb_av]",
    "[oz_av]": "[oz_av]",
    "oz": "[oz_av]",
    "m": "m",
    "cm": "cm",
    "mm": "mm",
    "[in_i]": "[in_i]",
    "[in_us]": "[in_i]",
    "in": "[in_i]",
    "inch": "[in_i]",
    "inches": "[in_i]",
    "[ft_i]": "[ft_i]",
    "ft": "[ft_i]",
    "cel": "Cel",
    "c": "Cel",
    "degc": "Cel",
    "°c": "Cel",
    "deg c": "Cel",
    "celsius": "Cel",
    "[degf]": "[degF]",
    "f": "[degF]",
    "degf": "[degF]",
    "°f": "[degF]",
    "deg f": "[degF]",
    "fahrenheit": "[degF]",
    "k": "K",
    "/min": "/min",
    "1/min": "/min",
    "{beats}/min": "/min",
    "{beat}/min": "/min",
    "beats/min": "/min",
    "beats/minute": "/min",
    "bpm": "/min",
    "count/min": "/min",
    "{breaths}/min": "/min",
    "breaths/min": "/min",
    "/s": "/s",
    "/h": "/h",
    "mm[hg]": "mm[Hg]",
    "mmhg": "mm[Hg]",
    "mm hg": "mm[Hg]",
    "kpa": "kPa",
    "%": "%",
    "percent": "%",
    "1": "1",
    "kg/m2": "kg/m2",
    "kg/m^2": "kg/m2",
    "kg/m²": "kg/m2",
    "ml/min/{1.73_m2}": "mL/min/{1.73_m2}",
    "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "ml/min/1.73 m2": "mL/min/{1.73_m2}",
    "ml/min/1.73m^2": "mL/min/{1.73_m2}",
    "ml/min/1.73 m^2": "mL/min/{1.73_m2}",
    "ml/min/1.73m²": "mL/min/{1.73_m2}",
    "ml/min/{1.73m2}": "mL/min/{1.73_m2}",
    "ml/min": "mL/min",
    "l": "L",
    "dl": "dL",
    "ml": "mL",
    "fl": "fL",
    "pg": "pg",
    "u/l": "U/L",
    "iu/l": "IU/L",
    "[iu]/l": "IU/L",
    "miu/l": "mIU/L",
    "m[iu]/l": "mIU/L",
    "uiu/ml": "mIU/L",  # 1 uIU/mL == 1 mIU/L
    "u[iu]/ml": "mIU/L",
    "µiu/ml": "mIU/L",
    "μiu/ml": "mIU/L",
    "miu/ml": "IU/L",  # 1 mIU/mL == 1 IU/L
    "ku/l": "kU/L",
    "mg/g": "mg/g",
    "mg/g{creat}": "mg/g",
    "mg/mmol": "mg/mmol",
    "mmol/mol": "mmol/mol",
    "ph": "[pH]",
    "[ph]": "[pH]",
    "s": "s",
    "sec": "s",
    "min": "min",
    "h": "h",
    "hr": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "a": "a",
    "yr": "a",
    "year": "a",
    "years": "a",
}

_ANNOTATION = re.compile(r"^\{[^{}]*\}$")


def _fold(unit: str) -> str:
    """Fold case, micro signs and spacing so equivalent spellings compare equal."""
    u = unit.strip().replace("µ", "u").replace("μ", "u").replace("²", "2")
    u = re.sub(r"\s*/\s*", "/", u)
    return u.lower()


def canonical_unit(unit: str | None) -> str:
    """The canonical UCUM spelling of ``unit``; raises UnitError if it is unknown.

    A bare UCUM annotation such as ``{score}`` is a valid dimensionless unit and is kept as is.
    """
    if unit is None or not str(unit).strip():
        raise UnitError("no unit given; supply the unit the value was measured in")
    raw = str(unit).strip()
    if raw in _UNITS:
        return raw
    if _ANNOTATION.match(raw):
        return raw
    folded = _fold(raw)
    if folded in _ALIASES:
        return _ALIASES[folded]
    # Exact-case forms of unknown prefixes are not guessed: "Mg/dL" could be a typo for anything.
    raise UnitError(f"unknown unit {raw!r}; use a UCUM unit such as 'mg/dL', 'mmol/L' or '10*3/uL'")


@dataclass(frozen=True, slots=True)
class Analyte:
    """What the unit conversions know about one LOINC code (a row of ``analytes.csv``)."""

    code: str
    name: str
    canonical_unit: str
    molar_mass: float | None = None
    conversion: str | None = None  # special conversions, e.g. "hba1c_ifcc"
    aliases: tuple[str, ...] = ()  # units that mean the canonical unit for this code
    implied_unit: str | None = None  # unit assumed when a row carries none
    group: str = ""


@cache
def _analytes() -> dict[str, Analyte]:
    out: dict[str, Analyte] = {}
    text = resources.files("workbench.cohort.labs").joinpath("analytes.csv").read_text(encoding="utf-8")
    for row in csv.DictReader(line for line in text.splitlines() if not line.startswith("#")):
        aliases = tuple(canonical_unit(a) for a in row["unit_aliases"].split("|") if a)
        out[row["code"]] = Analyte(
            code=row["code"],
            name=row["name"],
            canonical_unit=canonical_unit(row["canonical_unit"]),
            molar_mass=float(row["molar_mass_g_per_mol"]) if row["molar_mass_g_per_mol"] else None,
            conversion=row["conversion"] or None,
            aliases=aliases,
            implied_unit=canonical_unit(row["implied_unit"]) if row["implied_unit"] else None,
            group=row["group"],
        )
    return out


def analyte(code: str | None) -> Analyte | None:
    """The conversion facts for a LOINC code, or None when the code is not in the table."""
    if code is None:
        return None
    return _analytes().get(str(code))


def canonical_unit_for(code: str | None, unit: str | None = None) -> str:
    """The unit values of ``code`` are normalised to (the canonical spelling of ``unit`` if unknown code)."""
    a = analyte(code)
    if a is not None:
        return a.canonical_unit
    try:
        return canonical_unit(unit)
    except UnitError as exc:
        raise UnitError(f"{exc} (code {code or 'unknown'})") from None


_Fn = Callable[[float], float]


def _linear(factor: float, offset: float = 0.0) -> _Fn:
    return lambda v: v * factor + offset


def _between_units(src: _Unit, dst: _Unit) -> _Fn:
    # value_in_dst = (value * src.factor + src.offset - dst.offset) / dst.factor
    return _linear(src.factor / dst.factor, (src.offset - dst.offset) / dst.factor)


def _chain(first: _Fn, then: _Fn) -> _Fn:
    return lambda v: then(first(v))


def _hba1c(src: str, dst: str) -> _Fn | None:
    """NGSP/DCCT percent <-> IFCC mmol/mol via the IFCC-NGSP master equation."""
    if src == "%" and dst == "mmol/mol":
        return lambda v: (v - 2.15) * 10.929
    if src == "mmol/mol" and dst == "%":
        return lambda v: v / 10.929 + 2.15
    return None


@cache
def converter(from_unit: str | None, to_unit: str, code: str | None = None) -> _Fn:
    """A function converting values of ``code`` from ``from_unit`` to ``to_unit``.

    Raises UnitError naming the units and the code when no conversion exists.
    """
    a = analyte(code)
    if (from_unit is None or not str(from_unit).strip()) and a is not None and a.implied_unit:
        from_unit = a.implied_unit
    try:
        src_code = canonical_unit(from_unit)
        dst_code = canonical_unit(to_unit)
    except UnitError as exc:
        raise UnitError(f"{exc} (code {code or 'unknown'})") from None
    if a is not None:
        # Code-specific synonyms (eGFR reported as "mL/min", enzymes as "IU/L").
        if src_code in a.aliases:
            src_code = a.canonical_unit
        if dst_code in a.aliases:
            dst_code = a.canonical_unit
    if src_code == dst_code:
        return _linear(1.0)
    src, dst = _UNITS.get(src_code), _UNITS.get(dst_code)
    if src is not None and dst is not None and src.dimension == dst.dimension:
        return _between_units(src, dst)
    if a is not None and a.conversion == "hba1c_ifcc":
        fn = _hba1c(src_code, dst_code)
        if fn is not None:
            return fn
        # Allow e.g. "1" (fraction) -> "%" -> mmol/mol
        for mid in ("%", "mmol/mol"):
            m = _UNITS[mid]
            if src is not None and src.dimension == m.dimension and mid != dst_code:
                step = _hba1c(mid, dst_code)
                if step is not None:
                    return _chain(_between_units(src, m), step)
    if a is not None and a.molar_mass and src is not None and dst is not None:
        mm = a.molar_mass
        if src.dimension == "mass_conc" and dst.dimension == "subst_conc":
            # g/L / (g/mol) = mol/L
            return _linear(src.factor / mm / dst.factor)
        if src.dimension == "subst_conc" and dst.dimension == "mass_conc":
            return _linear(src.factor * mm / dst.factor)
    raise UnitError(
        f"cannot convert {src_code!r} to {dst_code!r} for code {code or 'unknown'}; "
        "the units measure different things or the analyte's molar mass is not known"
    )


def tidy(value: float) -> float:
    """Round to 12 significant digits so converted values sit exactly on round thresholds (37.99999... -> 38)."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, 11 - int(math.floor(math.log10(abs(value)))))


def convert(value: float, from_unit: str | None, to_unit: str, code: str | None = None) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit`` (``code`` enables analyte-specific conversions)."""
    return tidy(converter(from_unit, to_unit, code)(float(value)))


def normalize(value: float, unit: str | None, code: str | None = None) -> tuple[float, str]:
    """``(value, canonical_unit)`` for a result of LOINC ``code``; raises UnitError for unknown units."""
    a = analyte(code)
    target = a.canonical_unit if a is not None else canonical_unit(unit)
    out = convert(value, unit, target, code)
    if math.isnan(out):
        raise UnitError(f"value for code {code or 'unknown'} is not a number")
    return out, target
