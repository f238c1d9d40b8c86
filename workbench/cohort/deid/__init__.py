"""De-identification: keyed pseudonyms, Safe Harbor tables, free-text redaction, k-anonymity.

The free-text part loads Presidio and spaCy, so it is imported on first use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.cohort.deid.pseudonym import pseudonym, workspace_key
from workbench.cohort.deid.safe_harbor import (
    TABLE_RULES,
    KAnonymityReport,
    age_band,
    deidentified_table,
    k_anonymity,
    restricted_zip3,
    zip3,
)

if TYPE_CHECKING:
    from workbench.cohort.deid.text import DeidResult, deidentify_text, deidentify_texts

__all__ = [
    "TABLE_RULES",
    "DeidResult",
    "KAnonymityReport",
    "age_band",
    "deidentified_table",
    "deidentify_text",
    "deidentify_texts",
    "k_anonymity",
    "pseudonym",
    "restricted_zip3",
    "workspace_key",
    "zip3",
]

_LAZY = {"DeidResult", "deidentify_text", "deidentify_texts"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from workbench.cohort.deid import text

        return getattr(text, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
