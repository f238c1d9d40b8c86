"""The sentence layer: abstract sentences embedded one by one, a document scored by max(passage, sentence)."""
# ruff: noqa: F811  (pytest fixtures imported from retrieval_data are parameters here)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from retrieval_data import built_index, index_dir  # noqa: F401 - fixtures

from workbench.errors import IndexCorrupt
from workbench.retrieval import EvidenceIndex, load_embedder
from workbench.retrieval.sentences import MIN_SENTENCE_CHARS, sentence_text, sentence_units
from workbench.types import Chunk, Document, Section

ABSTRACT = (
    "Background: heart failure is common in older adults. "
    "Methods: we enrolled 400 patients in twelve centres. "
    "Results: dapagliflozin reduced hospitalisation for worsening heart failure by a quarter. "
    "Conclusions: more trials are needed."
)


def _chunk(i: int, text: str, start: int, kind: str = "abstract", doc: str = "p1") -> Chunk:
    return Chunk(
        chunk_id=f"{doc}#{i}",
        doc_id=doc,
        text=text,
        corpus="lit",
        title="SGLT2 inhibitors in heart failure",
        section="Abstract",
        start=start,
        end=start + len(text),
        source_kind=kind,  # type: ignore[arg-type]
    )


def test_sentence_units_take_each_sentence_once_with_its_title() -> None:
    first, rest = ABSTRACT[:105], ABSTRACT[53:]  # the second sentence is in both chunks
    chunks = [
        _chunk(0, first, 0),
        _chunk(1, rest, 53),
        _chunk(0, "Guideline pages are not split into sentences at all.", 0, "guideline", "g1"),
    ]
    texts, rows = sentence_units(chunks, first_row=10)
    assert texts == [
        "SGLT2 inhibitors in heart failure. Background: heart failure is common in older adults.",
        "SGLT2 inhibitors in heart failure. Methods: we enrolled 400 patients in twelve centres.",
        "SGLT2 inhibitors in heart failure. Results: dapagliflozin reduced hospitalisation for "
        "worsening heart failure by a quarter.",
        "SGLT2 inhibitors in heart failure. Conclusions: more trials are needed.",
    ]
    assert rows.tolist() == [10, 10, 11, 11]


def test_sentence_text_and_short_sentences() -> None:
    assert sentence_text("Does X help?", "It did.") == "Does X help? It did."
    assert sentence_text("  ", "Only the sentence.") == "Only the sentence."
    short = "n = 12 mice. " + "A sentence long enough to keep here."
    texts, _ = sentence_units([_chunk(0, short, 0)])
    assert len(texts) == 1 and len("n = 12 mice.") < MIN_SENTENCE_CHARS


def test_dense_score_is_best_of_passage_and_sentence(index_dir: Path) -> None:
    index = EvidenceIndex.load(index_dir)
    emb = load_embedder()
    query = "does vitamin D prevent hip fractures"
    q = emb.encode_query(query)
    hits = index.search(query, k=10, mode="dense")
    assert hits
    for hit in hits:
        rows = [r for r, key in enumerate(index._doc_key) if key == f"{hit.corpus}\0{hit.doc_id}"]
        best = max(float(index.vectors[r] @ q) for r in rows)
        texts, _ = sentence_units([_as_chunk(index, r) for r in rows])
        if texts:
            best = max(best, float((emb.encode(texts) @ q).max()))
        assert hit.score == pytest.approx(best, abs=2e-3), hit.doc_id


def _as_chunk(index: EvidenceIndex, row: int) -> Chunk:
    c = index._cols
    return Chunk(
        chunk_id=c["chunk_id"][row],
        doc_id=c["doc_id"][row],
        text=c["text"][row],
        corpus=c["corpus"][row],
        title=c["title"][row],
        section=c["section"][row],
        start=int(c["start"][row]),
        end=int(c["end"][row]),
        source_kind=c["source_kind"][row],
    )


def test_sentences_follow_add_delete_and_reload(index_dir: Path) -> None:
    index = EvidenceIndex.load(index_dir)
    before = len(index.sentences)
    doc = Document(
        doc_id="p9",
        title="SGLT2 inhibitors in heart failure",
        text=ABSTRACT,
        corpus="pubmed",
        source_kind="abstract",
        sections=[Section("Abstract", 0, len(ABSTRACT))],
        metadata={"year": 2021},
    )
    index.add_documents([doc])
    assert len(index.sentences) == before + 4
    query = "dapagliflozin reduced hospitalisation for worsening heart failure"
    assert index.search(query, k=1, mode="dense")[0].doc_id == "p9"

    again = EvidenceIndex.load(index_dir)
    assert len(again.sentences) == before + 4
    assert again.info()["counts"]["sentences"] == before + 4
    assert again.search(query, k=1, mode="dense")[0].doc_id == "p9"

    again.delete_documents(["p9"])
    after = EvidenceIndex.load(index_dir)
    assert all(h.doc_id != "p9" for h in after.search(query, k=20, mode="dense"))
    assert all(h.doc_id != "p9" for h in after.search(query, k=20))


def test_damaged_sentence_rows_are_reported(index_dir: Path) -> None:
    np.save(index_dir / "sentence_rows.npy", np.array([10_000], dtype=np.int64))
    with pytest.raises(IndexCorrupt, match="sentence"):
        EvidenceIndex.load(index_dir)  # checksum
    with pytest.raises(IndexCorrupt, match="sentence"):
        EvidenceIndex.load(index_dir, verify=False)  # count or range


def test_sentence_layer_follows_the_dense_type_and_may_be_empty(tmp_path: Path) -> None:
    from retrieval_data import make_docs

    emb = load_embedder()
    docs = make_docs()
    hnsw = EvidenceIndex.build(docs, tmp_path / "hnsw", embedder=emb, dense_kind="hnsw")
    assert hnsw.manifest["sentence_index"] == "hnsw" and len(hnsw.sentences) > 0
    assert EvidenceIndex.load(tmp_path / "hnsw").search("metformin HbA1c", k=1)[0].doc_id == "d2"

    guides = [d for d in docs if d.source_kind == "guideline"]
    plain = EvidenceIndex.build(guides, tmp_path / "guides", embedder=emb)
    assert len(plain.sentences) == 0 and plain.manifest["counts"]["sentences"] == 0
    again = EvidenceIndex.load(tmp_path / "guides")
    assert again.search("blood sugar checks", k=1, mode="dense")[0].doc_id == "g2"
