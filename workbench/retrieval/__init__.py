"""Evidence retrieval: embeddings, FAISS dense search, bm25s sparse search, hybrid fusion."""

from workbench.retrieval.build import build_index
from workbench.retrieval.embedder import Embedder, load_embedder
from workbench.retrieval.embedding_cache import EmbeddingCache
from workbench.retrieval.index import EvidenceIndex, SearchFilters

__all__ = ["Embedder", "EmbeddingCache", "EvidenceIndex", "SearchFilters", "build_index", "load_embedder"]
