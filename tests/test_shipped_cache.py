"""The shipped embedding cache covers every passage and abstract sentence of the shipped corpora.

Without it the first `make lab` would encode ~90,000 texts on the user's CPU (an hour on two
cores) instead of taking about a minute. Only keys are hashed here; nothing is re-encoded
except a small random sample that must reproduce the stored vectors.
"""

from __future__ import annotations

import random

import numpy as np

from workbench.corpus import SHIPPED_CORPORA, TokenizerCounter, chunk_documents, iter_corpus, passage_text
from workbench.retrieval import EmbeddingCache, load_embedder
from workbench.retrieval.build import shipped_cache_dir
from workbench.retrieval.embedding_cache import passage_key
from workbench.retrieval.sentences import sentence_units
from workbench.settings import Settings


def test_shipped_cache_covers_the_shipped_corpora() -> None:
    settings = Settings()
    emb = load_embedder()
    cache = EmbeddingCache.load(shipped_cache_dir(settings), emb.fingerprint)
    budget = max(16, min(settings.chunk_tokens, emb.max_seq_length - 2))
    counter = TokenizerCounter(emb.tokenizer)
    texts: list[str] = []
    for name in SHIPPED_CORPORA:
        chunks = list(
            chunk_documents(
                iter_corpus(name, settings.corpora_dir),
                max_tokens=budget,
                overlap=settings.chunk_overlap,
                count_tokens=counter,
                header_in_budget=True,
            )
        )
        texts += [passage_text(c) for c in chunks]
        texts += sentence_units(chunks)[0]
    missing = [t for t in texts if passage_key(emb.fingerprint, t) not in cache._pos]
    assert not missing, f"{len(missing)} of {len(texts)} shipped texts are not in the cache"

    sample = random.Random(7).sample(texts, 12)
    fresh = emb.encode(sample)
    stored = cache.encode(emb, sample)
    assert cache.misses == 0
    assert float((fresh * stored).sum(axis=1).min()) > 0.999
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-3)
