"""The de-identification benchmark's scoring (bench/deid.py) on a tiny gold file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
