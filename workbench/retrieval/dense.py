"""Dense retrieval with FAISS over unit vectors (inner product = cosine).

Three index types: ``flat`` (exact, default), ``hnsw`` (graph, for large corpora) and
``ivfpq`` (compressed, for very large corpora). ``flat16`` (exact scan of float16 codes) is
used internally for the sentence layer. FAISS row ids equal the chunk store's row
numbers; deletions are tombstones passed as an ID selector, so every type supports them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import faiss as _faiss
import numpy as np

from workbench.errors import IndexCorrupt

# faiss' bundled stubs lack SearchParametersHNSW and the `sel` keyword; use it untyped.
faiss: Any = _faiss

DenseKind = Literal["flat", "hnsw", "ivfpq", "flat16"]


def _new_index(kind: DenseKind, dim: int, train: np.ndarray) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "flat16":
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
        return index
    if kind == "ivfpq":
        n = len(train)
        nlist = max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39 or 1))
        m = next(m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if dim % m == 0)
        # PQ codebooks need at least 2**nbits training points; small corpora get coarser codes
        nbits = max(1, min(8, int(math.log2(max(n, 2)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        index.train(train)
        index.nprobe = min(nlist, 16)
        return index
    raise ValueError(f"unknown dense index type {kind!r}; choose flat, hnsw or ivfpq")


class DenseIndex:
    """A FAISS index whose ids are row numbers 0..n-1."""

    def __init__(self, index: faiss.Index, kind: DenseKind) -> None:
        self.index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, kind: DenseKind = "flat") -> DenseIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = _new_index(kind, vectors.shape[1], vectors)
        if len(vectors):
            index.add(vectors)
        return cls(index, kind)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(
        self, query: np.ndarray, k: int, *, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (rows, scores) for one query vector; rows with ``mask == False`` are excluded."""
        n = len(self)
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        params = None
        if mask is not None:
            bits = np.packbits(mask.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(128, k))
            elif self.kind == "ivfpq":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self.index.nprobe)
            else:
                params = faiss.SearchParameters(sel=selector)
        # One query is ~1 ms of work on one core; splitting it over OpenMP threads costs more in
        # barriers than it saves, and 10x more when another process holds the other core
        # (SciFact, 13k passages, k=1000: 1.3 ms on one thread vs 16 ms on two under load).
        threads = faiss.omp_get_max_threads()
        if threads > 1:
            faiss.omp_set_num_threads(1)
        try:
            scores, rows = self.index.search(q, min(k, n), params=params)
        finally:
            if threads > 1:
                faiss.omp_set_num_threads(threads)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: DenseKind) -> DenseIndex:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorrupt(
                f"cannot read FAISS index {path}: {exc}; rebuild with `workbench index build`"
            ) from exc
        return cls(index, kind)
