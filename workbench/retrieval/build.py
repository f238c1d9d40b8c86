"""Building the evidence index of the shipped corpora (and user corpora) in one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from workbench.retrieval.embedder import Embedder, load_embedder
from workbench.retrieval.embedding_cache import EmbeddingCache
from workbench.retrieval.index import EvidenceIndex
from workbench.settings import Settings


def shipped_cache_dir(settings: Settings | None = None) -> Path:
    """Folder of the shipped passage-embedding cache (beside the corpora)."""
    settings = settings or Settings()
    return settings.corpora_dir / "embeddings"


def build_index(
    corpora: Sequence[str] | None = None,
    *,
    folder: Path | str | None = None,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    use_cache: bool = True,
    write_cache: bool = False,
    progress: bool = False,
) -> EvidenceIndex:
    """Build the index of ``corpora`` (default: every shipped corpus) into ``folder``.

    The shipped embedding cache supplies vectors for passages it holds; the rest are encoded.
    With ``write_cache`` the cache file is rewritten from this build (maintainers use it after
    changing corpora, chunking or the model).
    """
    from workbench.corpus import SHIPPED_CORPORA, corpus_fingerprint, corpus_info, iter_corpus

    settings = settings or Settings()
    names = list(corpora) if corpora else list(SHIPPED_CORPORA)
    embedder = embedder or load_embedder(
        settings.embedding_model or None, batch_size=settings.embedding_batch_size
    )
    cache_dir = shipped_cache_dir(settings)
    cache = (
        EmbeddingCache.load(cache_dir, embedder.fingerprint)
        if use_cache
        else EmbeddingCache(embedder.fingerprint)
    )
    info = {}
    for name in names:
        entry = corpus_info(name, settings.corpora_dir)
        info[name] = {
            "fingerprint": corpus_fingerprint(name, settings.corpora_dir),
            "licence": entry.get("licence", ""),
            "source_records": entry.get("source_records"),
        }

    def documents():  # type: ignore[no-untyped-def]
        for name in names:
            yield from iter_corpus(name, settings.corpora_dir)

    index = EvidenceIndex.build(
        documents(),
        folder or settings.index_dir,
        embedder=embedder,
        dense_kind=settings.dense_index,
        max_tokens=settings.chunk_tokens,
        overlap=settings.chunk_overlap,
        corpora=info,
        cache=cache,
        cache_checkpoint=cache_dir if write_cache else None,
        fusion=settings.fusion,
        progress=progress,
    )
    if write_cache:
        cache.save(cache_dir)
    return index
