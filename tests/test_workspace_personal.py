"""Personal-document index: real MiniLM embeddings stored encrypted, searched under consent, erased."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workspace_support import scan

from workbench.types import Chunk
from workbench.workspace import open_workspace

DOCS = {
    "discharge_letter.txt": [
        "Discharge letter for Hortensia Vanderpool: admitted with community-acquired pneumonia.",
        "Treated with amoxicillin for seven days; oxygen saturation recovered to 97 percent.",
    ],
    "cardiology_note.txt": [
        "Cardiology follow-up: atrial fibrillation, rate controlled on bisoprolol.",
        "Anticoagulation with apixaban continued; no bleeding reported.",
    ],
}


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from workbench.retrieval.embedder import load_embedder

    return load_embedder()


def _add(ws, tmp_path: Path, embedder) -> dict[str, str]:  # type: ignore[no-untyped-def]
    ids = {}
    for name, parts in DOCS.items():
        path = tmp_path / name
        path.write_text("\n".join(parts))
        chunks = []
        pos = 0
        for i, text in enumerate(parts):
            chunks.append(
                Chunk(f"{name}#{i}", name, text, "personal", name, "", pos, pos + len(text), "user_document")
            )
            pos += len(text) + 1
        vectors = embedder.encode([c.text for c in chunks])
        ids[name] = ws.personal.add(path, chunks, vectors)
    return ids


def test_search_and_erase(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    ws = open_workspace(tmp_path / "ws")
    ids = _add(ws, tmp_path, embedder)
    hits = ws.personal.search(embedder.encode_one("which antibiotic was given for pneumonia?"), k=2)
    assert hits[0]["source_id"] == ids["discharge_letter.txt"] and "amoxicillin" in hits[0]["text"]
    hits = ws.personal.search(embedder.encode_one("blood thinner for atrial fibrillation"), k=1)
    assert hits[0]["source_id"] == ids["cardiology_note.txt"]
    ws.connect().execute("CHECKPOINT")
    assert scan([tmp_path / "ws"], ["Hortensia", "Vanderpool", "amoxicillin", "apixaban"]) == []
    report = ws.consent.revoke(ids["discharge_letter.txt"])
    assert report["rows_deleted"]["personal_chunks"] == 2 and report["verified"]
    hits = ws.personal.search(embedder.encode_one("which antibiotic was given for pneumonia?"), k=5)
    assert {h["source_id"] for h in hits} == {ids["cardiology_note.txt"]}


def test_expired_consent_hides_vectors(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    ws = open_workspace(tmp_path / "ws")
    ids = _add(ws, tmp_path, embedder)
    ws.consent.revoke(ids["cardiology_note.txt"], erase=False)
    hits = ws.personal.search(embedder.encode_one("atrial fibrillation"), k=5)
    assert hits and ids["cardiology_note.txt"] not in {h["source_id"] for h in hits}
    other = open_workspace(tmp_path / "ws", compartment="someone-else")
    assert other.personal.search(embedder.encode_one("atrial fibrillation")) == []
