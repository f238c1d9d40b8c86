"""Corpora: readers for every document format, section- and sentence-aware chunking, shipped corpora.

Typical use::

    from workbench.corpus import iter_shipped, chunk_document
    for doc in iter_shipped():
        chunks = chunk_document(doc, max_tokens=200, overlap=40)
"""

from __future__ import annotations

from workbench.corpus.beir import read_beir_jsonl
from workbench.corpus.chunking import (
    CHUNK_METADATA_KEYS,
    TokenizerCounter,
    chunk_document,
    chunk_documents,
    count_tokens_default,
    passage_header,
    passage_text,
    split_sentences,
)
from workbench.corpus.medquad import parse_medquad, read_medquad
from workbench.corpus.pubmed import read_pubmed_xml
from workbench.corpus.pubmedqa import read_pubmedqa
from workbench.corpus.readers import FORMATS, detect_format, read_documents
from workbench.corpus.registry import (
    SHIPPED_CORPORA,
    CorpusIntegrityError,
    corpus_fingerprint,
    corpus_info,
    iter_corpus,
    iter_path_corpus,
    iter_shipped,
    known_corpora,
    load_manifest,
    register_corpus,
    unregister_corpus,
    verify_corpora,
)
from workbench.corpus.userdocs import parse_html, parse_markdown, parse_pdf, parse_text

__all__ = [
    "CHUNK_METADATA_KEYS",
    "FORMATS",
    "SHIPPED_CORPORA",
    "TokenizerCounter",
    "CorpusIntegrityError",
    "chunk_document",
    "chunk_documents",
    "corpus_fingerprint",
    "corpus_info",
    "count_tokens_default",
    "detect_format",
    "iter_corpus",
    "iter_path_corpus",
    "iter_shipped",
    "known_corpora",
    "load_manifest",
    "parse_html",
    "parse_markdown",
    "parse_medquad",
    "parse_pdf",
    "parse_text",
    "passage_header",
    "passage_text",
    "read_beir_jsonl",
    "read_documents",
    "read_medquad",
    "read_pubmed_xml",
    "read_pubmedqa",
    "register_corpus",
    "split_sentences",
    "unregister_corpus",
    "verify_corpora",
]
