"""The evidence index: chunk store + FAISS dense index + BM25 sparse index, in one folder.

Layout of an index folder::

    manifest.json    written last: model, dimension, counts, corpora, versions, file checksums
    chunks.parquet   one row per chunk (row number = FAISS id = BM25 row), with a ``deleted`` flag
    vectors.npy      float32 unit vectors, row order (kept to rebuild FAISS or change its type)
    dense.faiss      the FAISS index
    tokens.jsonl     BM25 tokens per chunk row (bm25s re-weights from them on load)
    doc_tokens.jsonl BM25 tokens per document (title + whole text) for document ranking
    doc_keys.json    the document of each doc_tokens row ("corpus\0doc_id")
    sentences.faiss  float16 vectors of abstract sentences (see ``sentences.py``)
    sentence_rows.npy the chunk row holding each sentence

A folder without ``manifest.json`` is a partial build; a file whose checksum differs from the
manifest is corruption. Both raise :class:`~workbench.errors.IndexCorrupt`. Every write goes to
a fresh sibling folder that replaces the old one by rename, so a crash never leaves a mixed index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.errors import IndexCorrupt, IndexMissing, ModelMismatch, UnknownCorpus
from workbench.retrieval.dense import DenseIndex, DenseKind
from workbench.retrieval.embedder import Embedder, load_embedder
from workbench.retrieval.embedding_cache import EmbeddingCache
from workbench.retrieval.hybrid import DEFAULT_FUSION, FusionMethod, SearchMode, hybrid_rank
from workbench.retrieval.sentences import SENTENCE_KINDS, SentenceLayer, sentence_units
from workbench.retrieval.sparse import SparseIndex, tokenize
from workbench.types import Chunk, Document, Hit

FORMAT_VERSION = 3  # 3: sentence layer
MANIFEST = "manifest.json"
_DATA_FILES = (
    "chunks.parquet",
    "vectors.npy",
    "dense.faiss",
    "tokens.jsonl",
    "doc_tokens.jsonl",
    "doc_keys.json",
    "sentences.faiss",
    "sentence_rows.npy",
)


@dataclass(slots=True)
class SearchFilters:
    """Metadata filters; every field that is set must match."""

    corpora: Sequence[str] | None = None
    year_min: int | None = None
    year_max: int | None = None
    publication_types: Sequence[str] | None = None
    source_kinds: Sequence[str] | None = None
    doc_ids: Sequence[str] | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("health-evidence-workbench", "faiss-cpu", "bm25s", "sentence-transformers", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _snippet(text: str, limit: int = 280) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit] + " …"


def _source_label(meta: dict[str, Any], corpus: str) -> str:
    """Where a citation points: DOI or PMID link, a page URL, or the corpus name."""
    if meta.get("doi"):
        return f"https://doi.org/{meta['doi']}"
    if meta.get("pmid"):
        return f"https://pubmed.ncbi.nlm.nih.gov/{meta['pmid']}/"
    if meta.get("url"):
        return str(meta["url"])
    return corpus


class EvidenceIndex:
    """Hybrid (dense + BM25) search over chunked documents, persisted in one folder."""

    def __init__(
        self,
        folder: Path,
        rows: pa.Table,
        vectors: np.ndarray,
        dense: DenseIndex,
        sparse: SparseIndex,
        doc_sparse: SparseIndex,
        doc_keys: list[str],
        manifest: dict[str, Any],
        sentences: SentenceLayer,
        embedder: Embedder | None = None,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.vectors = vectors
        self.dense = dense
        self.sparse = sparse
        self.doc_sparse = doc_sparse
        self.doc_keys = doc_keys
        self.sentences = sentences
        self._embedder = embedder
        self._set_rows(rows)

    # ------------------------------------------------------------------ rows

    def _set_rows(self, rows: pa.Table) -> None:
        self.rows = rows
        cols = rows.to_pydict()
        self._chunk_id: list[str] = cols["chunk_id"]
        self._doc_id: list[str] = cols["doc_id"]
        # doc ids are unique only within a corpus (a PMID may be in two corpora)
        self._doc_key = [f"{c}\0{d}" for c, d in zip(cols["corpus"], cols["doc_id"])]
        self._corpus = np.array(cols["corpus"], dtype=object)
        self._kind = np.array(cols["source_kind"], dtype=object)
        self._year = np.array([y if y is not None else -1 for y in cols["year"]], dtype=np.int32)
        self._ptypes: list[list[str]] = cols["publication_types"]
        self._deleted = np.array(cols["deleted"], dtype=bool)
        self._cols = cols
        self._row_of_chunk = {c: i for i, c in enumerate(self._chunk_id)}
        # a re-added document gets a new doc row; only its latest row is live
        latest = {key: j for j, key in enumerate(self.doc_keys)}
        self._docrow_of_chunk = np.array([latest.get(k, -1) for k in self._doc_key], dtype=np.int64)
        self._rows_of_doc: dict[str, list[int]] = {}
        for r, key in enumerate(self._doc_key):
            if not self._deleted[r]:
                self._rows_of_doc.setdefault(key, []).append(r)
        self._doc_live = np.zeros(len(self.doc_keys), dtype=bool)
        live_rows = self._docrow_of_chunk[~self._deleted]
        self._doc_live[live_rows[live_rows >= 0]] = True

    def __len__(self) -> int:
        """Number of live (not deleted) chunks."""
        return int((~self._deleted).sum())

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.manifest["model"]["path"] or None)
            self._check_model(self._embedder)
        return self._embedder

    def _check_model(self, embedder: Embedder) -> None:
        m = self.manifest["model"]
        if embedder.dimension != m["dimension"]:
            raise ModelMismatch(
                f"index {self.folder} was built with {m['name']} ({m['dimension']} dimensions) but the "
                f"configured model {embedder.name} has {embedder.dimension}; rebuild with `workbench index build`"
            )
        if embedder.fingerprint != m["fingerprint"]:
            raise ModelMismatch(
                f"index {self.folder} was built with model {m['name']} (fingerprint {m['fingerprint']}) but "
                f"the configured model is {embedder.name} ({embedder.fingerprint}); rebuild with "
                "`workbench index build` or set WB_EMBEDDING_MODEL to the original model"
            )

    # ------------------------------------------------------------------ build / load

    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        folder: Path | str,
        *,
        embedder: Embedder | None = None,
        dense_kind: DenseKind = "flat",
        max_tokens: int = 200,
        overlap: int = 40,
        corpora: dict[str, Any] | None = None,
        cache: EmbeddingCache | None = None,
        cache_checkpoint: Path | None = None,
        fusion: FusionMethod = DEFAULT_FUSION,
        progress: bool = False,
    ) -> EvidenceIndex:
        """Chunk, embed and index ``documents`` into ``folder`` (replacing what was there).

        With a ``cache``, known passages are not re-encoded; with ``cache_checkpoint`` the cache
        is saved there as encoding proceeds, so an interrupted build resumes.
        """
        from workbench.corpus import TokenizerCounter, chunk_documents, passage_text

        folder = Path(folder)
        embedder = embedder or load_embedder()
        t0 = time.perf_counter()
        counter = TokenizerCounter(embedder.tokenizer)
        # the budget covers the title line too and leaves room for [CLS]/[SEP]: no passage is truncated
        budget = max(16, min(max_tokens, embedder.max_seq_length - 2))
        doc_keys: list[str] = []
        doc_texts: list[str] = []

        def remember(docs: Iterable[Document]) -> Iterable[Document]:
            for d in docs:
                doc_keys.append(f"{d.corpus}\0{d.doc_id}")
                doc_texts.append(f"{d.title}\n{d.text}")
                yield d

        chunks = list(
            chunk_documents(
                remember(_progress(documents, progress, "reading")),
                max_tokens=budget,
                overlap=overlap,
                count_tokens=counter,
                header_in_budget=True,
            )
        )
        texts = [passage_text(c) for c in chunks]
        vectors = _encode(embedder, texts, cache, progress, cache_checkpoint)
        sentence_texts, sentence_rows = sentence_units(chunks)
        sentence_vectors = _encode(embedder, sentence_texts, cache, progress, cache_checkpoint)
        sentences = SentenceLayer.build(sentence_vectors, sentence_rows, dense_kind)
        rows = _rows_table(chunks)
        dense = DenseIndex.build(vectors, dense_kind)
        sparse = SparseIndex(tokenize(texts))
        doc_sparse = SparseIndex(tokenize(doc_texts))
        counts: dict[str, dict[str, int]] = {}
        for c in chunks:
            entry = counts.setdefault(c.corpus, {"documents": 0, "chunks": 0})
            entry["chunks"] += 1
        for corpus, docs in _doc_counts(chunks).items():
            counts[corpus]["documents"] = docs
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model": {
                "name": embedder.name,
                "path": "" if embedder.name == "all-MiniLM-L6-v2" else str(embedder.model_path),
                "fingerprint": embedder.fingerprint,
                "dimension": embedder.dimension,
                "max_seq_length": embedder.max_seq_length,
            },
            "dense_index": dense_kind,
            "sentence_kinds": sorted(SENTENCE_KINDS),
            "fusion": fusion,
            "chunking": {
                "max_tokens": budget,
                "overlap": overlap,
                "tokenizer": "model",
                "header_in_budget": True,
            },
            "corpora": {name: {**(corpora or {}).get(name, {}), **cnt} for name, cnt in counts.items()},
            "counts": {
                "chunks": len(chunks),
                "documents": sum(c["documents"] for c in counts.values()),
            },
            "build_seconds": round(time.perf_counter() - t0, 2),
            "embedding_cache": None if cache is None else {"hits": cache.hits, "misses": cache.misses},
            "versions": _versions(),
        }
        index = cls(folder, rows, vectors, dense, sparse, doc_sparse, doc_keys, manifest, sentences, embedder)
        index.save()
        return index

    @classmethod
    def load(
        cls, folder: Path | str | None = None, *, embedder: Embedder | None = None, verify: bool = True
    ) -> EvidenceIndex:
        """Open the index in ``folder`` (default: settings' ``index_dir``), checking the manifest."""
        if folder is None:
            from workbench.settings import Settings

            folder = Settings().index_dir
        folder = Path(folder)
        if not folder.exists():
            raise IndexMissing(f"no evidence index at {folder}; build one with `workbench index build`")
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise IndexCorrupt(
                f"{folder} has no {MANIFEST}: the index build did not finish. Rebuild with `workbench index build`"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(
                f"{manifest_path} is not valid JSON ({exc}); rebuild with `workbench index build`"
            ) from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexCorrupt(
                f"{folder} has index format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}; "
                "rebuild with `workbench index build`"
            )
        for name in _DATA_FILES:
            path = folder / name
            if not path.exists():
                raise IndexCorrupt(
                    f"{path} is missing: the index is partial. Rebuild with `workbench index build`"
                )
            if verify and _sha256(path) != manifest["files"].get(name):
                raise IndexCorrupt(
                    f"{path} does not match the checksum in {MANIFEST}: the index is damaged. "
                    "Rebuild with `workbench index build`"
                )
        try:
            rows = pq.read_table(folder / "chunks.parquet")
            vectors = np.load(folder / "vectors.npy")
        except Exception as exc:  # pyarrow and numpy raise many types for damaged files
            raise IndexCorrupt(f"cannot read the chunk store in {folder}: {exc}; rebuild the index") from exc
        dense = DenseIndex.load(folder / "dense.faiss", manifest["dense_index"])
        try:
            sentence_rows = np.load(folder / "sentence_rows.npy")
            sentences = SentenceLayer(
                DenseIndex.load(folder / "sentences.faiss", manifest["sentence_index"]), sentence_rows
            )
        except IndexCorrupt:
            raise
        except Exception as exc:  # numpy raises many types for a damaged .npy
            raise IndexCorrupt(
                f"cannot read the sentence layer in {folder}: {exc}; rebuild the index"
            ) from exc
        sparse = SparseIndex.load(folder)
        doc_sparse = SparseIndex.load(folder, "doc_tokens.jsonl")
        try:
            doc_keys = json.loads((folder / "doc_keys.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(
                f"{folder}/doc_keys.json is not valid JSON ({exc}); rebuild the index"
            ) from exc
        if len(doc_keys) != len(doc_sparse):
            raise IndexCorrupt(f"{folder}: document keys and document BM25 rows disagree; rebuild the index")
        n = rows.num_rows
        if not (len(vectors) == len(dense) == len(sparse) == n):
            raise IndexCorrupt(
                f"{folder}: row counts disagree (chunks {n}, vectors {len(vectors)}, FAISS {len(dense)}, "
                f"BM25 {len(sparse)}); rebuild the index"
            )
        if len(sentence_rows) and not (0 <= sentence_rows.min() and sentence_rows.max() < n):
            raise IndexCorrupt(f"{folder}: sentence rows point outside the chunk store; rebuild the index")
        if (
            vectors.shape[1] != manifest["model"]["dimension"]
            or dense.dimension != manifest["model"]["dimension"]
            or sentences.dense.dimension != manifest["model"]["dimension"]
        ):
            raise ModelMismatch(
                f"{folder}: stored vectors do not have the manifest's dimension; rebuild the index"
            )
        index = cls(folder, rows, vectors, dense, sparse, doc_sparse, doc_keys, manifest, sentences)
        if embedder is not None:
            index._check_model(embedder)
            index._embedder = embedder
        return index

    def save(self) -> None:
        """Write the index atomically: a complete sibling folder replaces the old one."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.folder.with_name(f".{self.folder.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        pq.write_table(self.rows, tmp / "chunks.parquet")
        np.save(tmp / "vectors.npy", self.vectors)
        self.dense.save(tmp / "dense.faiss")
        self.sparse.save(tmp)
        self.doc_sparse.save(tmp, "doc_tokens.jsonl")
        (tmp / "doc_keys.json").write_text(json.dumps(self.doc_keys), encoding="utf-8")
        self.sentences.dense.save(tmp / "sentences.faiss")
        np.save(tmp / "sentence_rows.npy", self.sentences.rows)
        self.manifest["sentence_index"] = self.sentences.dense.kind
        self.manifest["counts"]["sentences"] = len(self.sentences)
        self.manifest["files"] = {name: _sha256(tmp / name) for name in _DATA_FILES}
        self.manifest["counts"]["live_chunks"] = len(self)
        (tmp / MANIFEST).write_text(json.dumps(self.manifest, indent=2, sort_keys=True), encoding="utf-8")
        old = self.folder.with_name(f".{self.folder.name}.old-{os.getpid()}")
        if self.folder.exists():
            self.folder.rename(old)
        tmp.rename(self.folder)
        if old.exists():
            shutil.rmtree(old)

    # ------------------------------------------------------------------ edit

    def add_documents(self, documents: Iterable[Document], *, cache: EmbeddingCache | None = None) -> int:
        """Chunk, embed and append documents (replacing any with the same id); returns chunks added."""
        from workbench.corpus import TokenizerCounter, chunk_documents, passage_text

        docs = list(documents)
        self.delete_documents([d.doc_id for d in docs], save=False)
        ch = self.manifest["chunking"]
        chunks = list(
            chunk_documents(
                docs,
                max_tokens=ch["max_tokens"],
                overlap=ch["overlap"],
                count_tokens=TokenizerCounter(self.embedder.tokenizer),
                header_in_budget=True,
            )
        )
        if chunks:
            texts = [passage_text(c) for c in chunks]
            vecs = _encode(self.embedder, texts, cache, False)
            sentence_texts, sentence_rows = sentence_units(chunks, first_row=self.rows.num_rows)
            self.sentences.add(_encode(self.embedder, sentence_texts, cache, False), sentence_rows)
            self.vectors = np.concatenate([self.vectors, vecs]) if len(self.vectors) else vecs
            self.dense.add(vecs)
            self.sparse.add(tokenize(texts))
            with_chunks = {c.doc_id for c in chunks}
            kept = [d for d in docs if d.doc_id in with_chunks]
            self.doc_sparse.add(tokenize([f"{d.title}\n{d.text}" for d in kept]))
            self.doc_keys.extend(f"{d.corpus}\0{d.doc_id}" for d in kept)
            self._set_rows(pa.concat_tables([self.rows, _rows_table(chunks)]))
            for corpus, n in _doc_counts(chunks).items():
                entry = self.manifest["corpora"].setdefault(corpus, {"documents": 0, "chunks": 0})
                entry["documents"] += n
                entry["chunks"] += sum(1 for c in chunks if c.corpus == corpus)
        self.manifest["counts"]["chunks"] = self.rows.num_rows
        self.save()
        return len(chunks)

    def delete_documents(self, doc_ids: Iterable[str], *, save: bool = True) -> int:
        """Mark every chunk of ``doc_ids`` deleted; returns the number of chunks removed."""
        wanted = set(doc_ids)
        hit = np.array([d in wanted for d in self._doc_id], dtype=bool) & ~self._deleted
        n = int(hit.sum())
        if n:
            for corpus, docs in _doc_counts_rows(
                self._corpus[hit], np.array(self._doc_id, dtype=object)[hit]
            ).items():
                entry = self.manifest["corpora"].get(corpus)
                if entry:
                    entry["documents"] = max(0, entry["documents"] - docs)
                    entry["chunks"] = max(0, entry["chunks"] - int((self._corpus[hit] == corpus).sum()))
            deleted = self._deleted | hit
            self._set_rows(
                self.rows.set_column(
                    self.rows.schema.get_field_index("deleted"), "deleted", pa.array(deleted)
                )
            )
        if save and n:
            self.save()
        return n

    # ------------------------------------------------------------------ search

    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Boolean row mask for live rows matching ``filters`` (None when nothing is filtered)."""
        live = ~self._deleted
        if filters is None:
            return live if self._deleted.any() else None
        m = live.copy()
        if filters.corpora:
            known = set(self.manifest["corpora"])
            unknown = [c for c in filters.corpora if c not in known]
            if unknown:
                raise UnknownCorpus(
                    f"corpus {', '.join(unknown)} is not in this index; indexed corpora: {', '.join(sorted(known))}"
                )
            m &= np.isin(self._corpus, list(filters.corpora))
        if filters.year_min is not None:
            m &= self._year >= filters.year_min
        if filters.year_max is not None:
            m &= (self._year <= filters.year_max) & (self._year >= 0)
        if filters.source_kinds:
            m &= np.isin(self._kind, list(filters.source_kinds))
        if filters.publication_types:
            wanted = {p.casefold() for p in filters.publication_types}
            m &= np.array(
                [bool(wanted & {p.casefold() for p in (pts or [])}) for pts in self._ptypes], dtype=bool
            )
        if filters.doc_ids:
            ids = set(filters.doc_ids)
            m &= np.array([d in ids for d in self._doc_id], dtype=bool)
        return m

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: SearchMode = "hybrid",
        filters: SearchFilters | None = None,
        fusion: FusionMethod | None = None,
        collapse: bool = True,
    ) -> list[Hit]:
        """The ``k`` best hits for ``query``.

        Args:
            query: free text.
            k: number of hits.
            mode: ``hybrid`` (default), ``dense`` or ``bm25``.
            filters: metadata filters.
            fusion: override the index's fusion method for hybrid mode.
            collapse: one hit per document (its best chunk) when True; raw chunks otherwise.
        """
        if not query.strip():
            return []
        mask = self.mask(filters)
        if mask is not None and not mask.any():
            return []
        ranked = hybrid_rank(
            self,
            query,
            mode=mode,
            mask=mask,
            k=k,
            collapse=collapse,
            fusion=fusion or self.manifest.get("fusion", DEFAULT_FUSION),
        )
        return [self._hit(row, score) for row, score in ranked]

    def _hit(self, row: int, score: float) -> Hit:
        c = self._cols
        meta = json.loads(c["metadata"][row]) if c["metadata"][row] else {}
        text = c["text"][row]
        return Hit(
            chunk_id=c["chunk_id"][row],
            doc_id=c["doc_id"][row],
            score=float(score),
            title=c["title"][row],
            source=_source_label(meta, c["corpus"][row]),
            snippet=_snippet(text),
            text=text,
            section=c["section"][row],
            start=int(c["start"][row]),
            end=int(c["end"][row]),
            corpus=c["corpus"][row],
            source_kind=c["source_kind"][row],
            metadata=meta,
        )

    def chunk(self, chunk_id: str) -> Hit:
        """The stored chunk ``chunk_id`` as a Hit with score 0."""
        try:
            return self._hit(self._row_of_chunk[chunk_id], 0.0)
        except KeyError:
            raise KeyError(f"no chunk {chunk_id!r} in index {self.folder}") from None

    def info(self) -> dict[str, Any]:
        """The manifest plus live counts, for `workbench index info`."""
        out = dict(self.manifest)
        out["folder"] = str(self.folder)
        out["live_chunks"] = len(self)
        out["deleted_chunks"] = int(self._deleted.sum())
        return out


# ---------------------------------------------------------------------- helpers


def _encode(
    embedder: Embedder,
    texts: list[str],
    cache: EmbeddingCache | None,
    progress: bool,
    checkpoint: Path | None = None,
) -> np.ndarray:
    if cache is None:
        return embedder.encode(texts, show_progress=progress)
    return cache.encode(embedder, texts, show_progress=progress, checkpoint=checkpoint)


def _progress(items: Iterable[Document], enabled: bool, desc: str) -> Iterable[Document]:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="doc")


def _doc_counts(chunks: Sequence[Chunk]) -> dict[str, int]:
    seen: dict[str, set[str]] = {}
    for c in chunks:
        seen.setdefault(c.corpus, set()).add(c.doc_id)
    return {k: len(v) for k, v in seen.items()}


def _doc_counts_rows(corpora: np.ndarray, doc_ids: np.ndarray) -> dict[str, int]:
    seen: dict[str, set[str]] = {}
    for corpus, doc in zip(corpora, doc_ids):
        seen.setdefault(str(corpus), set()).add(str(doc))
    return {k: len(v) for k, v in seen.items()}


def _rows_table(chunks: Sequence[Chunk]) -> pa.Table:
    def year(c: Chunk) -> int | None:
        y = c.metadata.get("year")
        try:
            return int(y) if y not in (None, "") else None
        except (TypeError, ValueError):
            return None

    return pa.table(
        {
            "chunk_id": pa.array([c.chunk_id for c in chunks], pa.string()),
            "doc_id": pa.array([c.doc_id for c in chunks], pa.string()),
            "corpus": pa.array([c.corpus for c in chunks], pa.string()),
            "title": pa.array([c.title for c in chunks], pa.string()),
            "section": pa.array([c.section for c in chunks], pa.string()),
            "start": pa.array([c.start for c in chunks], pa.int64()),
            "end": pa.array([c.end for c in chunks], pa.int64()),
            "text": pa.array([c.text for c in chunks], pa.string()),
            "source_kind": pa.array([c.source_kind for c in chunks], pa.string()),
            "year": pa.array([year(c) for c in chunks], pa.int32()),
            "publication_types": pa.array(
                [list(c.metadata.get("publication_types") or []) for c in chunks], pa.list_(pa.string())
            ),
            "metadata": pa.array(
                [json.dumps(c.metadata, default=str, sort_keys=True) for c in chunks], pa.string()
            ),
            "deleted": pa.array([False] * len(chunks), pa.bool_()),
        }
    )


__all__ = ["EvidenceIndex", "SearchFilters"]
