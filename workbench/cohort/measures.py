"""Shared measure names and units for ``measurements``, whatever the source (FHIR, Apple Health, MyFitnessPal).

Data, not code: each measure has one canonical unit; every source maps its codes and units
onto these, so weight from LOINC 29463-7 and from Apple's BodyMass both land as ``weight`` in kg.
"""

from __future__ import annotations

from workbench.errors import UnitError

#: measure -> canonical unit.
CANONICAL_UNITS: dict[str, str] = {
    "weight": "kg",
    "height": "cm",
    "bmi": "kg/m2",
    "body_fat": "%",
    "heart_rate": "/min",
    "resting_heart_rate": "/min",
    "respiratory_rate": "/min",
    "body_temperature": "Cel",
    "oxygen_saturation": "%",
    "blood_pressure_systolic": "mm[Hg]",
    "blood_pressure_diastolic": "mm[Hg]",
    "blood_glucose": "mg/dL",
    "steps": "count",
    "active_energy": "kcal",
    "basal_energy": "kcal",
    "distance": "km",
    "exercise_time": "min",
    "stand_time": "min",
    "sleep": "min",
    "in_bed": "min",
    "flights_climbed": "count",
    "dietary_energy": "kcal",
    "waist": "cm",
}

#: LOINC code -> measure, for FHIR vital-sign observations (components included: blood pressure).
LOINC_MEASURES: dict[str, str] = {
    "29463-7": "weight",
    "3141-9": "weight",
    "8302-2": "height",
    "39156-5": "bmi",
    "8867-4": "heart_rate",
    "40443-4": "resting_heart_rate",
    "9279-1": "respiratory_rate",
    "8310-5": "body_temperature",
    "2708-6": "oxygen_saturation",
    "59408-5": "oxygen_saturation",
    "8480-6": "blood_pressure_systolic",
    "8462-4": "blood_pressure_diastolic",
    "2339-0": "blood_glucose",
    "2345-7": "blood_glucose",
    "41653-7": "blood_glucose",
    "41950-7": "steps",
    "55423-8": "steps",
    "41981-2": "active_energy",
    "8280-0": "waist",
    "41982-0": "body_fat",
}

# (unit as written, lower-cased) -> (canonical unit, factor, offset): canonical = value * factor + offset
_UNIT_ALIASES: dict[str, tuple[str, float, float]] = {
    "kg": ("kg", 1.0, 0.0),
    "g": ("kg", 0.001, 0.0),
    "lb": ("kg", 0.45359237, 0.0),
    "lbs": ("kg", 0.45359237, 0.0),
    "[lb_av]": ("kg", 0.45359237, 0.0),
    "st": ("kg", 6.35029318, 0.0),
    "cm": ("cm", 1.0, 0.0),
    "m": ("m", 1.0, 0.0),
    "mm": ("cm", 0.1, 0.0),
    "in": ("cm", 2.54, 0.0),
    "[in_i]": ("cm", 2.54, 0.0),
    "ft": ("cm", 30.48, 0.0),
    "km": ("km", 1.0, 0.0),
    "mi": ("km", 1.609344, 0.0),
    "kg/m2": ("kg/m2", 1.0, 0.0),
    "count": ("count", 1.0, 0.0),
    "{count}": ("count", 1.0, 0.0),
    "1": ("count", 1.0, 0.0),
    "/min": ("/min", 1.0, 0.0),
    "count/min": ("/min", 1.0, 0.0),
    "{beats}/min": ("/min", 1.0, 0.0),
    "{breaths}/min": ("/min", 1.0, 0.0),
    "bpm": ("/min", 1.0, 0.0),
    "beats/min": ("/min", 1.0, 0.0),
    "cel": ("Cel", 1.0, 0.0),
    "degc": ("Cel", 1.0, 0.0),
    "°c": ("Cel", 1.0, 0.0),
    "[degf]": ("Cel", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "degf": ("Cel", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "°f": ("Cel", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "%": ("%", 1.0, 0.0),
    "mm[hg]": ("mm[Hg]", 1.0, 0.0),
    "mmhg": ("mm[Hg]", 1.0, 0.0),
    "mg/dl": ("mg/dL", 1.0, 0.0),
    # glucose: 1 mmol/L = 18.016 mg/dL (molar mass 180.16 g/mol)
    "mmol/l": ("mg/dL", 18.016, 0.0),
    "mmol<180.1558800000541>/l": ("mg/dL", 18.016, 0.0),
    "kcal": ("kcal", 1.0, 0.0),
    "cal": ("kcal", 1.0, 0.0),  # Apple's "Cal" is the food calorie (kcal)
    "kj": ("kcal", 1.0 / 4.184, 0.0),
    "min": ("min", 1.0, 0.0),
    "s": ("min", 1.0 / 60.0, 0.0),
    "h": ("min", 60.0, 0.0),
    "hr": ("min", 60.0, 0.0),
}


def to_canonical(measure: str, value: float, unit: str | None) -> tuple[float, str]:
    """Convert ``value`` in ``unit`` to the measure's canonical unit; raise :class:`UnitError` if unknown."""
    target = CANONICAL_UNITS.get(measure)
    if target is None:
        raise UnitError(f"unknown measure {measure!r}")
    if unit is None or unit == "":
        if target in ("count", "%", "kg/m2"):
            return value, target
        raise UnitError(f"measure {measure!r} has a value without a unit")
    alias = _UNIT_ALIASES.get(unit.strip().lower())
    if alias is None:
        raise UnitError(f"unknown unit {unit!r} for measure {measure!r}")
    canon, factor, offset = alias
    if canon == "m" and target == "km":
        return value / 1000.0, target
    if canon == "m" and target == "cm":
        return value * 100.0, target
    if canon == "cm" and target == "km":
        return value / 100000.0, target
    if canon == "%" and target == "%" and measure in ("oxygen_saturation", "body_fat") and value <= 1.0:
        return value * 100.0, target  # Apple stores fractions (0.97) with unit "%"
    if canon != target:
        raise UnitError(f"unit {unit!r} cannot express measure {measure!r} (expects {target})")
    return value * factor + offset, target
