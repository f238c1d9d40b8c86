"""Sparse retrieval: BM25 with bm25s over stemmed, stopword-filtered tokens.

The token ids of every row are kept beside the bm25s index, so adding or deleting
rows re-weights BM25 from stored tokens in seconds without re-reading any corpus.
Deleted rows are masked out at query time until the next compaction.
"""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

# Lucene's defaults. k1 = 1.2 rather than bm25s' 1.5: with tf saturating sooner, BM25 ranks sibling
# documents that repeat the query's topic word less by repetition, which helped fusion on every
# development part and was picked by the same rule as the dense share (bench/README.md).
K1 = 1.2
B = 0.75

_STEMMER = Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, English-stopword-filtered, Snowball-stemmed tokens of each text."""
    out = bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)
    return out  # type: ignore[return-value]


class SparseIndex:
    """BM25 over rows 0..n-1 (the same row numbers as the dense index and chunk store)."""

    def __init__(self, tokens: list[list[str]]) -> None:
        self.tokens = tokens
        self._build()

    def _build(self) -> None:
        self._bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
        # Empty token lists would shift bm25s' rows; a placeholder keeps row numbers aligned.
        corpus = [t if t else ["\x00empty"] for t in self.tokens]
        if corpus:
            self._bm25.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, tokens: list[list[str]]) -> None:
        """Append rows and re-weight from the stored tokens."""
        self.tokens.extend(tokens)
        self._build()

    def search(self, query: str, k: int, *, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (rows, scores) for ``query``; rows with ``mask == False`` are excluded."""
        n = len(self.tokens)
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = tokenize([query])[0]
        vocab = self._bm25.vocab_dict
        q = [t for t in q if t in vocab]
        if not q:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self._bm25.get_scores(q)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        k = min(k, n)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        keep = scores[top] > 0
        return top[keep].astype(np.int64), scores[top][keep].astype(np.float32)

    def save(self, folder: Path, name: str = "tokens.jsonl") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / name, "w", encoding="utf-8") as fh:
            for t in self.tokens:
                fh.write(json.dumps(t) + "\n")

    @classmethod
    def load(cls, folder: Path, name: str = "tokens.jsonl") -> SparseIndex:
        with open(folder / name, encoding="utf-8") as fh:
            tokens = [json.loads(line) for line in fh]
        return cls(tokens)
