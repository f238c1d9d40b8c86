"""The evidence index end to end: real model, real FAISS, real bm25s, real files."""
# ruff: noqa: F811  (pytest fixtures imported from retrieval_data are parameters here)

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from retrieval_data import DOCS, built_index, index_dir, make_docs  # noqa: F401 - fixtures

from workbench.errors import IndexCorrupt, IndexMissing, ModelMismatch, UnknownCorpus
from workbench.retrieval import EmbeddingCache, EvidenceIndex, SearchFilters, load_embedder
from workbench.types import Document


def test_round_trip_and_modes(index_dir: Path) -> None:
    index = EvidenceIndex.load(index_dir)
    assert len(index) == len(DOCS)
    for mode in ("hybrid", "dense", "bm25"):
        hits = index.search("does metformin lower HbA1c in type 2 diabetes", k=3, mode=mode)  # type: ignore[arg-type]
        assert hits, mode
        assert hits[0].doc_id == "d2", (mode, [h.doc_id for h in hits])
    hit = index.search("statins LDL", k=1)[0]
    assert hit.text == DOCS[0][2]
    assert hit.source == "https://pubmed.ncbi.nlm.nih.gov/d1/"
    assert hit.snippet and hit.chunk_id.startswith("d1#")


def test_manifest_records_model_and_counts(index_dir: Path) -> None:
    info = EvidenceIndex.load(index_dir).info()
    assert info["model"]["dimension"] == 384
    assert info["counts"]["documents"] == len(DOCS)
    assert set(info["corpora"]) == {"pubmed", "guide"}
    assert set(info["files"]) == {
        "chunks.parquet",
        "vectors.npy",
        "dense.faiss",
        "tokens.jsonl",
        "doc_tokens.jsonl",
        "doc_keys.json",
        "sentences.faiss",
        "sentence_rows.npy",
    }
    assert info["sentence_index"] == "flat16"
    assert info["counts"]["sentences"] > 0  # the "pubmed" fixture documents are abstracts
    assert "faiss-cpu" in info["versions"]


def test_filters(index_dir: Path) -> None:
    index = EvidenceIndex.load(index_dir)
    q = "blood pressure"
    assert {h.corpus for h in index.search(q, k=10, filters=SearchFilters(corpora=["guide"]))} == {"guide"}
    years = [h.metadata.get("year") for h in index.search(q, k=10, filters=SearchFilters(year_min=2016))]
    assert years and all(y is not None and y >= 2016 for y in years)
    rct = index.search(q, k=10, filters=SearchFilters(publication_types=["randomized controlled trial"]))
    assert {h.doc_id for h in rct} <= {"d1", "d4"} and rct
    kinds = {h.source_kind for h in index.search(q, k=10, filters=SearchFilters(source_kinds=["guideline"]))}
    assert kinds == {"guideline"}
    assert index.search(q, k=10, filters=SearchFilters(year_min=2030)) == []
    with pytest.raises(UnknownCorpus, match="nosuch"):
        index.search(q, filters=SearchFilters(corpora=["nosuch"]))


def test_add_and_delete_without_rebuild(index_dir: Path) -> None:
    index = EvidenceIndex.load(index_dir)
    vectors_before = index.vectors.copy()
    new = Document(
        doc_id="n1",
        title="Aspirin and colorectal cancer",
        text="Daily aspirin reduced colorectal cancer incidence after ten years.",
        corpus="pubmed",
        metadata={"year": 2020},
    )
    assert index.add_documents([new]) >= 1
    # old vectors untouched: nothing was re-encoded
    np.testing.assert_array_equal(index.vectors[: len(vectors_before)], vectors_before)
    assert EvidenceIndex.load(index_dir).search("aspirin colorectal cancer", k=1)[0].doc_id == "n1"

    assert index.delete_documents(["d2"]) >= 1
    reloaded = EvidenceIndex.load(index_dir)
    for mode in ("hybrid", "dense", "bm25"):
        ids = [h.doc_id for h in reloaded.search("metformin diabetes HbA1c", k=10, mode=mode)]  # type: ignore[arg-type]
        assert "d2" not in ids
    assert reloaded.info()["deleted_chunks"] >= 1
    # re-adding a document replaces it rather than duplicating it
    index.add_documents([new])
    assert [h.doc_id for h in EvidenceIndex.load(index_dir).search("aspirin", k=10)].count("n1") == 1


def test_missing_partial_and_corrupt(index_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(IndexMissing):
        EvidenceIndex.load(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(index_dir, broken)
    (broken / "vectors.npy").write_bytes((broken / "vectors.npy").read_bytes()[:-64])
    with pytest.raises(IndexCorrupt, match="checksum"):
        EvidenceIndex.load(broken)
    partial = tmp_path / "partial"
    shutil.copytree(index_dir, partial)
    (partial / "manifest.json").unlink()
    with pytest.raises(IndexCorrupt, match="did not finish"):
        EvidenceIndex.load(partial)
    missing = tmp_path / "missing"
    shutil.copytree(index_dir, missing)
    (missing / "dense.faiss").unlink()
    with pytest.raises(IndexCorrupt, match="partial"):
        EvidenceIndex.load(missing)


def test_model_mismatch(index_dir: Path) -> None:
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["model"]["fingerprint"] = "0000000000000000"
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    index = EvidenceIndex.load(index_dir)
    assert index.search("statins", k=1, mode="bm25")  # sparse search needs no model
    with pytest.raises(ModelMismatch, match="fingerprint"):
        index.search("statins", k=1, mode="dense")
    manifest["model"]["dimension"] = 768
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelMismatch):
        EvidenceIndex.load(index_dir)


def test_embedding_cache_reproduces_fresh_vectors(tmp_path: Path) -> None:
    emb = load_embedder()
    texts = [
        "Statins lower LDL cholesterol.",
        "Metformin lowers HbA1c.",
        "Influenza vaccination in older adults.",
    ]
    cache = EmbeddingCache(emb.fingerprint)
    fresh = cache.encode(emb, texts)
    assert (cache.hits, cache.misses) == (0, 3)
    cache.save(tmp_path)
    again = EmbeddingCache.load(tmp_path, emb.fingerprint)
    cached = again.encode(emb, texts[:2] + ["A new passage about aspirin."])
    assert (again.hits, again.misses) == (2, 1)
    cos = (cached[:2] * fresh[:2]).sum(axis=1)
    assert np.all(cos > 0.9999)
    # a tampered cache file is refused
    path = EmbeddingCache.path_for(tmp_path, emb.fingerprint)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IndexCorrupt):
        EmbeddingCache.load(tmp_path, emb.fingerprint)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_dense_index_types_and_mask(kind: str) -> None:
    from workbench.retrieval.dense import DenseIndex

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(2000, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    dense = DenseIndex.build(vecs, kind)  # type: ignore[arg-type]
    q = vecs[42] + 0.05 * rng.normal(size=384).astype(np.float32)
    rows, scores = dense.search(q, 5)
    assert rows[0] == 42
    assert np.all(np.diff(scores) <= 1e-5)
    mask = np.ones(len(vecs), dtype=bool)
    mask[42] = False
    masked, _ = dense.search(q, 5, mask=mask)
    assert 42 not in set(masked.tolist()) and len(masked) > 0


def test_embedding_cache_round_trips_keys_ending_in_nul(tmp_path: Path) -> None:
    from workbench.retrieval.embedding_cache import passage_key

    emb = load_embedder()
    # find passages whose 16-byte key ends with a NUL byte (numpy's fixed-width bytes would drop it)
    texts = [f"passage number {i}" for i in range(3000)]
    nul = [t for t in texts if passage_key(emb.fingerprint, t).endswith(b"\x00")][:2]
    assert nul
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(len(nul) + 3, emb.dimension)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    all_texts = nul + ["a", "b", "c"]
    cache = EmbeddingCache(emb.fingerprint)
    cache._add([passage_key(emb.fingerprint, t) for t in all_texts], vecs)
    cache.save(tmp_path)
    again = EmbeddingCache.load(tmp_path, emb.fingerprint)
    out = again.encode(emb, all_texts)
    assert (again.hits, again.misses) == (len(all_texts), 0)
    assert np.all((out * vecs).sum(axis=1) > 0.999)


def test_short_inputs_embed_like_a_batch() -> None:
    # One or a few texts take a direct path (no batching machinery); vectors must not change.
    from workbench.retrieval.embedder import load_embedder

    emb = load_embedder()
    texts = [
        "Statins lower LDL cholesterol.",
        "A much longer sentence about blood pressure and salt intake in older adults with diabetes.",
        "x",
        "Vitamin D and falls.",
        "Aspirin after myocardial infarction.",
    ]
    batch = emb.encode(texts)  # five texts: the batch path
    one_by_one = np.stack([emb.encode_one(t) for t in texts])
    few = emb.encode(texts[:3])
    assert np.allclose(one_by_one, batch, atol=1e-5)
    assert np.allclose(few, batch[:3], atol=1e-5)
    assert np.allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)


def test_query_precision_keeps_the_query_vector() -> None:
    # bfloat16 query weights halve the memory a query streams; the vector must stay the float32 one.
    from workbench.errors import ConfigError
    from workbench.retrieval.embedder import Embedder, bundled_model_path

    queries = ["Do statins lower LDL cholesterol in older adults?", "x", "vitamin D falls"]
    f32 = Embedder(bundled_model_path(), query_precision="float32")
    assert f32.query_dtype() == "float32"
    exact = np.stack([f32.encode_one(q) for q in queries])
    assert np.allclose(np.stack([f32.encode_query(q) for q in queries]), exact, atol=1e-5)
    assert f32._query_model is not None and f32._query_model.traced  # MiniLM traces

    bf16 = Embedder(bundled_model_path(), query_precision="bfloat16")
    assert bf16.query_dtype() == "bfloat16"
    approx = np.stack([bf16.encode_query(q) for q in queries])
    assert approx.dtype == np.float32
    assert np.allclose(np.linalg.norm(approx, axis=1), 1.0, atol=1e-5)
    cosines = (approx * exact).sum(axis=1)
    assert cosines.min() > 0.999, cosines
    assert not np.array_equal(approx, exact)  # it really ran in bfloat16
    # passages never take the bfloat16 path
    assert np.array_equal(bf16.encode_one(queries[0]), exact[0])

    with pytest.raises(ConfigError, match="query precision"):
        Embedder(bundled_model_path(), query_precision="int4")
