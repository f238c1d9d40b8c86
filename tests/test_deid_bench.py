"""The de-identification benchmark's scoring (bench/deid.py) on a tiny gold file."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_deid", REPO / "bench" / "deid.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_deid"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_covered_counts_letters_and_digits_only() -> None:
    bench = _bench()
    text = "at 12 Main St, Springfield"
    gold = (3, len(text))
    parts = [{"start": 3, "end": 13, "type": "STREET_ADDRESS"}, {"start": 15, "end": 26, "type": "LOCATION"}]
    assert bench.covered(text, *gold, parts)  # the ", " left between two redactions reveals nothing
    assert not bench.covered(text, *gold, parts, "STREET_ADDRESS")  # typed: Springfield is not an address
    assert not bench.covered(text, *gold, parts[:1])


def test_evaluate_on_a_tiny_gold_file(fixtures: Path) -> None:
    bench = _bench()
    res = bench.evaluate_presidio(fixtures / "deid" / "mini_gold.json")
    assert res["records"] == 4
    per = res["per_gold_type"]
    for typ in ("PERSON", "PHONE_NUMBER", "US_SSN", "EMAIL_ADDRESS", "DATE_TIME", "STREET_ADDRESS"):
        assert per[typ]["gold"] == 1 and per[typ]["recall"] == 1.0, typ
    assert res["precision_overall"] == 1.0
    assert all(res["targets_met"].values())
    md = bench.to_markdown({"presidio": res, "analyzer": {"spacy_model": "x"}})
    assert "| PERSON | PERSON | 1 | 1.000 |" in md


_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "0b6c1f0e-1111-4a4a-9a9a-000000000001",
    "name": [
        {"use": "official", "family": "Quenby812", "given": ["Odalys44"], "prefix": ["Ms."]},
        {"use": "maiden", "family": "Trevanion7", "given": ["Odalys44"]},
    ],
    "telecom": [{"system": "phone", "value": "555-810-7203"}, {"system": "email", "value": "oq@example.org"}],
    "identifier": [
        {"type": {"coding": [{"code": "SS"}]}, "value": "999-94-5397"},
        {"type": {"coding": [{"code": "DL"}]}, "value": "S99940903"},
        {"type": {"coding": [{"code": "PPN"}]}, "value": "X53631011X"},
        {"type": {"coding": [{"code": "MR"}]}, "value": "mrn-4471"},
    ],
    "birthDate": "1961-04-09",
    "address": [{"line": ["48 Halvorsen Crossing"], "city": "Wexbury", "postalCode": "02134"}],
}
_PID = _PATIENT["id"]


def _raw_tables() -> dict[str, pd.DataFrame]:
    """An export that was not de-identified: every identifier kind is somewhere in it."""
    patients = pd.DataFrame(
        {
            "patient_id": [_PID],
            "family": ["Quenby812"],
            "address_line": ["48 Halvorsen Crossing"],
            "city": ["Wexbury"],
            "postal_code": ["02134"],
            "birth_date": ["1961-04-09"],
            "ssn": ["999 94 5397"],  # other separators than the source
            "ids": ["S99940903 X53631011X mrn-4471"],
            "email": ["oq@example.org"],
        }
    )
    documents = pd.DataFrame(
        {
            "patient_id": [_PID, "someone-else"],
            "text": ["Odalys (maiden name Trevanion) called from (555) 810 7203.", "Born April 9, 1961."],
        }
    )
    return {"patients": patients, "documents": documents}


def test_leak_check_flags_every_kind_in_an_export_that_was_not_deidentified() -> None:
    bench = _bench()
    res = bench.search_leaks(_raw_tables(), [_PATIENT], lambda p: p["id"])
    per = res["per_kind"]
    for kind in bench.LEAK_KINDS:
        if kind in ("other_identifier",):
            assert per[kind]["searched"] == 0, kind
            continue
        assert per[kind]["searched"] >= 1 and per[kind]["found"] >= 1, kind
    assert per["name"]["searched"] == 3  # Quenby812, Odalys44 and the maiden name Trevanion7
    assert per["name"]["found"] == 3  # "Odalys" and "Trevanion" without Synthea's digits count
    assert per["phone"]["found_in"] == {"documents": 1}  # reformatted, in a note
    assert per["ssn"]["found_in"] == {"patients": 1}
    # A birth date is searched in the patient's own rows only: another patient's note does not count.
    other = _raw_tables()
    other["patients"] = other["patients"].assign(birth_date="1961-04-10")
    assert bench.search_leaks(other, [_PATIENT], lambda p: p["id"])["per_kind"]["birth_date"]["found"] == 0
    assert res["values_found"] == sum(per[k]["found"] for k in bench.LEAK_KINDS)


def test_leak_check_finds_nothing_once_the_values_are_gone() -> None:
    bench = _bench()
    clean = {
        "patients": pd.DataFrame({"patient_id": ["P-1"], "birth_date": ["1961-09-02"], "zip3": ["021"]}),
        "documents": pd.DataFrame({"patient_id": ["P-1"], "text": ["<PERSON> called from <PHONE_NUMBER>."]}),
    }
    res = bench.search_leaks(clean, [_PATIENT], lambda p: "P-1")
    assert res["values_searched"] == 14 and res["values_found"] == 0
    # Part of a longer word or number is not the value.
    near = {
        "documents": pd.DataFrame({"patient_id": ["P-1"], "text": ["Wexburyshire 1555-810-72039 Odalys44x"]})
    }
    assert bench.search_leaks(near, [_PATIENT], lambda p: "P-1")["values_found"] == 0


@given(
    hay=st.text(alphabet="ab-_ 1(2).\n", max_size=40),
    needle=st.text(alphabet="ab-_ 1(2).", min_size=1, max_size=5),
)
def test_leak_search_matches_the_regex_it_replaces(hay: str, needle: str) -> None:
    bench = sys.modules.get("bench_deid") or _bench()
    ls = bench.LeakSearch(hay)
    assert ls.occurs(needle) == (re.search(rf"(?<![\w-]){re.escape(needle)}(?![\w-])", hay) is not None)
    digits = re.sub(r"\D", "", needle * 4)
    if len(digits) >= 7:
        rx = r"(?<!\d)" + r"[\s().-]*".join(digits) + r"(?!\d)"
        assert ls.digits_occur(needle * 4) == (re.search(rx, hay) is not None)
