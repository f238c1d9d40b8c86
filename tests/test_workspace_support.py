"""Helpers shared by the workspace tests (no tests here): fixture bundles, PHI values, raw-byte scans."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "workspace"


def bundles() -> list[Path]:
    """The three Synthea fixture bundles (gzipped FHIR R4 transaction bundles)."""
    return sorted(FIXTURES.glob("*.json.gz"))


def phi_values(bundle: Path) -> dict[str, str]:
    """Identifying values of the bundle's Patient: names, street address, phone, birth date."""
    data = json.loads(gzip.decompress(bundle.read_bytes()))
    patient = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient")
    name = patient["name"][0]
    out = {
        "patient_id": patient["id"],
        "family": name["family"],
        "given": name["given"][0],
        "birth_date": patient["birthDate"],
        "street": patient["address"][0]["line"][0],
        "phone": patient["telecom"][0]["value"],
    }
    return out


def scan(folders: list[Path], needles: list[str]) -> list[tuple[str, str]]:
    """(file, needle) for every needle found (case-sensitive) in raw bytes (UTF-8/16) or a file name."""
    hits = []
    for folder in folders:
        if not folder.exists():
            continue
        for path in folder.rglob("*"):
            for needle in needles:
                if needle in path.name:
                    hits.append((str(path), needle))
            if not path.is_file():
                continue
            data = path.read_bytes()
            for needle in needles:
                for form in (needle.encode(), needle.encode("utf-16-le")):
                    if form in data:
                        hits.append((str(path), needle))
    return hits
