"""Labs and vitals: UCUM unit normalisation, reference ranges kept as data, flags and trends.

The data files beside this module are the single source of truth: ``analytes.csv`` (canonical
unit, molar mass and unit synonyms per LOINC code) and ``reference_ranges.csv`` (intervals and
critical limits per code, sex and age, each with its source).
"""

from workbench.cohort.labs.ranges import (
    Flag,
    ReferenceRange,
    flag,
    flag_value,
    reference_range,
    reference_ranges,
)
from workbench.cohort.labs.results import lab_results, normalize_frame
from workbench.cohort.labs.trends import trend_of, trends
from workbench.cohort.labs.units import (
    Analyte,
    analyte,
    canonical_unit,
    canonical_unit_for,
    convert,
    converter,
    normalize,
)

__all__ = [
    "Analyte",
    "Flag",
    "ReferenceRange",
    "analyte",
    "canonical_unit",
    "canonical_unit_for",
    "convert",
    "converter",
    "flag",
    "flag_value",
    "lab_results",
    "normalize",
    "normalize_frame",
    "reference_range",
    "reference_ranges",
    "trend_of",
    "trends",
]
