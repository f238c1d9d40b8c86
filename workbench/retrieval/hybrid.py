"""Hybrid ranking: dense passages, BM25 documents, fusion per document.

The steps, one query at a time:

1. Dense candidates: the top ``CANDIDATES`` passages from FAISS. A document scores its best
   passage (MaxP), so a long document split into several passages is neither favoured nor
   penalised, and the embedding model never sees more than its input limit.
2. Sparse candidates: BM25 over whole documents (title + full text), where term statistics
   are most reliable; passage-level BM25 serves chunk searches and picks BM25 snippets.
3. Fusion of the two document lists (:mod:`workbench.retrieval.fusion`): a weighted z-score sum
   by default (dense 0.7, BM25 0.3); reciprocal rank fusion and min-max weighted selectable.
4. Each returned document is represented by its passage closest to the query.

With ``collapse=False`` the passages themselves are ranked (dense and passage BM25 fused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from workbench.retrieval import fusion as fusion_mod

if TYPE_CHECKING:
    from workbench.retrieval.index import EvidenceIndex

SearchMode = Literal["hybrid", "dense", "bm25"]
FusionMethod = Literal["zscore", "rrf", "weighted"]

#: Candidates taken from each retriever before fusion. Deep lists let fusion rescue items one
#: retriever ranks low; 1,000 is the usual depth of BEIR-style evaluation.
CANDIDATES = 1000
DEFAULT_FUSION: FusionMethod = "zscore"
#: Share of the dense list in score fusion (z-score and min-max); BM25 gets the rest. Chosen to
#: maximise the smallest margin of hybrid over the better single retriever across development
#: parts of three sets (SciFact train, half of MedQuAD, half of PubMedQA; bench/README.md):
#: with equal shares a weak BM25 pulled hybrid below dense alone on MedQuAD.
DENSE_WEIGHT = 0.7


def _fuse(score_lists: list[dict], method: str) -> list[tuple]:  # type: ignore[type-arg]
    # Lists come dense first, BM25 second, whenever both are present.
    weights = [DENSE_WEIGHT, 1.0 - DENSE_WEIGHT] if len(score_lists) == 2 else None
    if method == "rrf":
        return fusion_mod.rrf([list(s) for s in score_lists])
    if method == "weighted":
        return fusion_mod.weighted(score_lists, weights=weights)
    if method == "zscore":
        return fusion_mod.zscore_sum(score_lists, weights=weights)
    raise ValueError(f"unknown fusion {method!r}; choose zscore, rrf or weighted")


def _doc_mask(index: EvidenceIndex, mask: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None if index._doc_live.all() else index._doc_live
    allowed = np.zeros(len(index.doc_keys), dtype=bool)
    rows = index._docrow_of_chunk[mask]
    allowed[rows[rows >= 0]] = True
    return allowed & index._doc_live


def _best_rows(rows: np.ndarray, scores: np.ndarray, keys: list[str]) -> dict[str, tuple[int, float]]:
    best: dict[str, tuple[int, float]] = {}
    for r, s in zip(rows.tolist(), scores.tolist()):
        best.setdefault(keys[r], (r, s))  # rows arrive best first
    return best


def _with_sentences(
    best: dict[str, tuple[int, float]], rows: np.ndarray, scores: np.ndarray, keys: list[str]
) -> dict[str, tuple[int, float]]:
    """A document's dense score is the better of its best passage and its best sentence.

    When a sentence wins, the hit shows the chunk holding that sentence.
    """
    if not len(rows):
        return best
    merged = dict(best)
    for r, s in zip(rows.tolist(), scores.tolist()):
        key = keys[r]
        held = merged.get(key)
        if held is None or s > held[1]:
            merged[key] = (r, s)
    return dict(sorted(merged.items(), key=lambda kv: -kv[1][1]))


def _allowed_rows(index: EvidenceIndex, key: str, mask: np.ndarray | None) -> list[int]:
    rows = index._rows_of_doc.get(key, [])
    return [r for r in rows if mask is None or mask[r]]


def hybrid_rank(
    index: EvidenceIndex,
    query: str,
    *,
    mode: SearchMode = "hybrid",
    mask: np.ndarray | None = None,
    k: int = 10,
    collapse: bool = True,
    fusion: str = DEFAULT_FUSION,
) -> list[tuple[int, float]]:
    """Rows (passages) of the ``k`` best results with their scores, best first."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise ValueError(f"unknown search mode {mode!r}; choose hybrid, dense or bm25")
    if fusion not in ("zscore", "rrf", "weighted"):
        raise ValueError(f"unknown fusion {fusion!r}; choose zscore, rrf or weighted")
    depth = max(CANDIDATES, k)
    keys = index._doc_key
    q = index.embedder.encode_query(query) if mode != "bm25" else None

    if not collapse:
        lists = []
        if q is not None:
            lists.append(index.dense.search(q, depth, mask=mask))
        if mode != "dense":
            lists.append(index.sparse.search(query, depth, mask=mask))
        per_row = [{int(r): float(s) for r, s in zip(rows.tolist(), sc.tolist())} for rows, sc in lists]
        ranked = per_row[0].items() if len(per_row) == 1 else _fuse(per_row, fusion)
        return list(ranked)[:k]

    dense_best: dict[str, tuple[int, float]] = {}
    if q is not None:
        rows, scores = index.dense.search(q, depth, mask=mask)
        dense_best = _best_rows(rows, scores, keys)
        if len(index.sentences):
            dense_best = _with_sentences(dense_best, *index.sentences.search(q, depth, chunk_mask=mask), keys)
        if mode == "dense":
            return [(r, s) for r, s in list(dense_best.values())[:k]]

    doc_rows, doc_scores = index.doc_sparse.search(query, depth, mask=_doc_mask(index, mask))
    sparse_docs = {index.doc_keys[j]: float(s) for j, s in zip(doc_rows.tolist(), doc_scores.tolist())}
    if mode == "bm25":
        ranked_docs = list(sparse_docs.items())[:k]
        rows, scores = index.sparse.search(query, depth, mask=mask)
        passage_best = _best_rows(rows, scores, keys)
        out = []
        for key, score in ranked_docs:
            row = passage_best[key][0] if key in passage_best else _allowed_rows(index, key, mask)[0]
            out.append((row, score))
        return out

    dense_docs = {key: s for key, (_, s) in dense_best.items()}
    out = []
    for key, score in _fuse([dense_docs, sparse_docs], fusion)[:k]:
        if key in dense_best:
            row = dense_best[key][0]
        else:  # found by BM25 only: show its passage closest to the query
            rows_ = _allowed_rows(index, key, mask)
            row = rows_[int(np.argmax(index.vectors[rows_] @ q))]
        out.append((row, score))
    return out
