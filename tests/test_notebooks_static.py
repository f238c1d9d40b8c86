"""The notebooks as committed: all six present, no outputs, no logic of their own, nothing identifying."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = [
    "00_start_here",
    "01_evidence_index",
    "02_cohort_explorer",
    "03_case_explorer",
    "04_private_workspace",
    "05_evaluate_retrieval",
]


def _cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]


def test_all_notebooks_present() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


#: Run by nbval in strict mode: their checked outputs are stored (and must stay deterministic).
STRICT = ["00_start_here", "02_cohort_explorer"]


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_without_volatile_outputs(name: str) -> None:
    for cell in _cells(name):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        if name not in STRICT or "NBVAL_IGNORE_OUTPUT" in src:
            assert cell["outputs"] == [] and cell["execution_count"] is None, name
        for out in cell["outputs"]:
            # Stored outputs are text only: no widget state, plots or HTML tied to one run.
            assert out["output_type"] in ("stream", "execute_result"), name
            assert set(out.get("data", {})) <= {"text/plain"}, name


def test_strict_notebooks_store_their_checked_outputs() -> None:
    for name in STRICT:
        checked = [
            c
            for c in _cells(name)
            if c["cell_type"] == "code" and "NBVAL_IGNORE_OUTPUT" not in "".join(c["source"]) and c["outputs"]
        ]
        assert checked, name


def test_passphrase_never_echoed() -> None:
    for name in EXPECTED:
        for cell in _cells(name):
            src = "".join(cell["source"])
            if "WB_PASSPHRASE" in src and cell["cell_type"] == "code":
                assert src.rstrip().endswith(";"), name


@pytest.mark.parametrize("name", EXPECTED)
def test_code_cells_hold_no_logic(name: str) -> None:
    # Functions, classes and loops belong in the package; notebooks call it.
    banned = re.compile(r"^\s*(def |class |for |while |async def )", re.MULTILINE)
    for cell in _cells(name):
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            assert not banned.search(src), f"{name}: {src[:80]!r}"
            assert len(src.splitlines()) <= 12, f"{name}: a long code cell"


@pytest.mark.parametrize("name", EXPECTED)
def test_no_patient_identifiers_in_notebooks(name: str) -> None:
    text = (NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8")
    # Names and raw ids of the fixture patients (their bundles' file names) never appear.
    for bundle in (NOTEBOOKS.parent / "tests" / "fixtures" / "fhir" / "bundles").glob("*.json.gz"):
        first, last, raw_id = bundle.name.removesuffix(".json.gz").split("_", 2)
        assert first not in text and last not in text and raw_id not in text, name


def test_passphrase_only_defaults() -> None:
    # The demo passphrase is a default for WB_PASSPHRASE, never an override of the user's.
    for name in EXPECTED:
        for cell in _cells(name):
            src = "".join(cell["source"])
            if "WB_PASSPHRASE" in src and cell["cell_type"] == "code":
                assert 'os.environ.setdefault("WB_PASSPHRASE"' in src, name
                assert 'os.environ["WB_PASSPHRASE"]' not in src, name
