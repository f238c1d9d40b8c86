"""Sentence vectors for abstracts: a second dense layer beside the passage vectors.

A claim or question usually matches one finding of an abstract, and a 200-token passage
vector averages that finding with the background, methods and other results around it. So
every sentence of an abstract is embedded on its own, prefixed with the title for context,
and a document's dense score is the better of its best passage and its best sentence. On the
SciFact *train* split this raised hybrid nDCG@10 from 0.735 to 0.753 (bench/README.md).

Only ``abstract`` documents get sentence vectors. Guideline pages and user documents are
long, list-heavy pages whose "sentences" are often fragments ("Fatigue."), and they would
multiply the vectors to embed several-fold for no measured gain.

Sentence vectors live in a FAISS scalar-quantised float16 index: the shipped embedding
cache holds float16 anyway, and on one core scanning 44k half-precision vectors took 1.8 ms
against 4.5-7.8 ms for float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.corpus.chunking import split_sentences
from workbench.retrieval.dense import DenseIndex, DenseKind
from workbench.types import Chunk

#: Source kinds whose sentences are embedded one by one.
SENTENCE_KINDS = frozenset({"abstract"})
#: Shorter sentences ("Methods.", "n = 12.") carry no finding of their own.
MIN_SENTENCE_CHARS = 20


def sentence_text(title: str, sentence: str) -> str:
    """What is embedded for one sentence: the title for context, then the sentence."""
    head = title.strip()
    if not head:
        return sentence
    return f"{head} {sentence}" if head.endswith((".", "?", "!", ":")) else f"{head}. {sentence}"


def sentence_units(chunks: Sequence[Chunk], first_row: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts to embed for the sentences of ``chunks``, and the chunk row holding each.

    Neighbouring chunks overlap by whole sentences; a sentence is taken once, from the first
    chunk that holds it. Row numbers start at ``first_row`` (the chunks' place in the index).
    """
    texts: list[str] = []
    rows: list[int] = []
    seen: set[tuple[str, str, int]] = set()
    for i, chunk in enumerate(chunks):
        if chunk.source_kind not in SENTENCE_KINDS:
            continue
        for a, b in split_sentences(chunk.text):
            if b - a < MIN_SENTENCE_CHARS:
                continue
            where = (chunk.corpus, chunk.doc_id, chunk.start + a)
            if where in seen:
                continue
            seen.add(where)
            texts.append(sentence_text(chunk.title, chunk.text[a:b]))
            rows.append(first_row + i)
    return texts, np.asarray(rows, dtype=np.int64)


def sentence_index_kind(passage_kind: DenseKind, n: int) -> DenseKind:
    """The FAISS type for ``n`` sentence vectors: float16 exact unless passages use an approximate type."""
    if passage_kind == "flat" or n == 0:
        return "flat16"
    return passage_kind


class SentenceLayer:
    """Sentence vectors of abstracts in FAISS, each mapped to the chunk row that holds it."""

    def __init__(self, dense: DenseIndex, rows: np.ndarray) -> None:
        if len(dense) != len(rows):
            raise ValueError(f"{len(dense)} sentence vectors but {len(rows)} chunk rows")
        self.dense = dense
        self.rows = np.asarray(rows, dtype=np.int64)

    @classmethod
    def build(cls, vectors: np.ndarray, rows: np.ndarray, passage_kind: DenseKind) -> SentenceLayer:
        return cls(DenseIndex.build(vectors, sentence_index_kind(passage_kind, len(rows))), rows)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        if len(vectors) != len(rows):
            raise ValueError(f"{len(vectors)} sentence vectors but {len(rows)} chunk rows")
        if len(rows):
            self.dense.add(vectors)
            self.rows = np.concatenate([self.rows, np.asarray(rows, dtype=np.int64)])

    def search(
        self, query: np.ndarray, k: int, *, chunk_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (chunk rows, scores) of sentences, best first; ``chunk_mask`` hides chunk rows."""
        if not len(self.rows):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        mask = None if chunk_mask is None else chunk_mask[self.rows]
        if mask is not None and not mask.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        hits, scores = self.dense.search(query, k, mask=mask)
        return self.rows[hits], scores


__all__ = ["MIN_SENTENCE_CHARS", "SENTENCE_KINDS", "SentenceLayer", "sentence_text", "sentence_units"]
