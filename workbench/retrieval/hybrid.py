"""Hybrid ranking: dense and BM25 candidates, per-document aggregation, fusion.

The steps, one query at a time:

1. Candidates: the top ``CANDIDATES`` rows from FAISS and from BM25 (same mask for both).
2. Aggregation (``collapse=True``): a document scores its best chunk in each retriever
   (MaxP), so long documents split into several chunks are neither favoured nor penalised.
3. Fusion of the two lists (:mod:`workbench.retrieval.fusion`).
4. Each returned document is represented by its chunk with the best fused score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from workbench.retrieval import fusion as fusion_mod

if TYPE_CHECKING:
    from workbench.retrieval.dense import DenseIndex
    from workbench.retrieval.embedder import Embedder
    from workbench.retrieval.sparse import SparseIndex

SearchMode = Literal["hybrid", "dense", "bm25"]

#: Candidates taken from each retriever before fusion. Deep lists let fusion rescue items one
#: retriever ranks low; 1,000 is the usual depth of BEIR-style evaluation.
CANDIDATES = 1000


def _best_per_doc(
    rows: np.ndarray, scores: np.ndarray, doc_of_row: Sequence[str]
) -> dict[str, tuple[int, float]]:
    best: dict[str, tuple[int, float]] = {}
    for r, s in zip(rows.tolist(), scores.tolist()):
        d = doc_of_row[r]
        if d not in best:  # rows arrive best first
            best[d] = (r, s)
    return best


def hybrid_rank(
    query: str,
    *,
    embedder: Embedder | None,
    dense: DenseIndex,
    sparse: SparseIndex,
    vectors: np.ndarray,
    doc_of_row: Sequence[str],
    mode: SearchMode = "hybrid",
    mask: np.ndarray | None = None,
    k: int = 10,
    collapse: bool = True,
    fusion: str = "rrf",
) -> list[tuple[int, float]]:
    """Rows of the ``k`` best results with their scores, best first."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise ValueError(f"unknown search mode {mode!r}; choose hybrid, dense or bm25")
    if fusion not in ("rrf", "weighted"):
        raise ValueError(f"unknown fusion {fusion!r}; choose rrf or weighted")
    depth = max(CANDIDATES, k)
    lists: list[tuple[np.ndarray, np.ndarray]] = []
    if mode in ("hybrid", "dense"):
        if embedder is None:
            raise ValueError("dense search needs an embedder")
        q = embedder.encode_one(query)
        lists.append(dense.search(q, depth, mask=mask))
    if mode in ("hybrid", "bm25"):
        lists.append(sparse.search(query, depth, mask=mask))

    if not collapse:
        per_key = [
            {int(r): float(s) for r, s in zip(rows.tolist(), scores.tolist())} for rows, scores in lists
        ]
        if len(per_key) == 1:
            return list(per_key[0].items())[:k]
        fused = _fuse(per_key, fusion)
        return [(row, score) for row, score in fused[:k]]

    best = [_best_per_doc(rows, scores, doc_of_row) for rows, scores in lists]
    doc_scores = [{d: s for d, (_, s) in b.items()} for b in best]
    if len(doc_scores) == 1:
        return [(best[0][d][0], s) for d, s in list(doc_scores[0].items())[:k]]
    fused_docs = _fuse(doc_scores, fusion)[:k]
    out = []
    for doc, score in fused_docs:
        # the representative chunk: the dense winner when dense found the document, else BM25's
        row = best[0][doc][0] if doc in best[0] else best[1][doc][0]
        out.append((row, score))
    return out


def _fuse(score_lists: list[dict], method: str) -> list[tuple]:  # type: ignore[type-arg]
    if method == "rrf":
        return fusion_mod.rrf([list(s) for s in score_lists])
    return fusion_mod.weighted(score_lists)
