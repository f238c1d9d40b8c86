"""Health Evidence Workbench: cited evidence, de-identified records and cohorts, a private workspace.

The curated public API. Names load lazily, so ``import workbench`` stays fast and a
notebook that only searches evidence never imports Presidio or DuckDB::

    from workbench import EvidenceIndex, ask
    index = EvidenceIndex.load()
    print(ask("Does metformin lower HbA1c?", index=index).to_markdown())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench.errors import (
    AccessDenied,
    AnswerError,
    AuditTampered,
    CohortError,
    ConfigError,
    ConsentError,
    CorpusError,
    DeidError,
    DependencyMissing,
    EgressBlocked,
    IndexCorrupt,
    IndexError_,
    IndexMissing,
    LLMError,
    ModelMismatch,
    ReaderError,
    RecordFormatError,
    RecordsError,
    UnitError,
    UnknownCorpus,
    WorkbenchError,
    WorkspaceError,
    WrongPassphrase,
)
from workbench.settings import Settings, get_settings
from workbench.types import Chunk, Document, Hit, Section

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    # corpora
    "SHIPPED_CORPORA": "workbench.corpus",
    "chunk_document": "workbench.corpus",
    "chunk_documents": "workbench.corpus",
    "TokenizerCounter": "workbench.corpus",
    "passage_text": "workbench.corpus",
    "read_documents": "workbench.corpus",
    "iter_shipped": "workbench.corpus",
    "iter_corpus": "workbench.corpus",
    "iter_path_corpus": "workbench.corpus",
    "register_corpus": "workbench.corpus",
    "verify_corpora": "workbench.corpus",
    "load_manifest": "workbench.corpus",
    # retrieval
    "EvidenceIndex": "workbench.retrieval",
    "SearchFilters": "workbench.retrieval",
    "EmbeddingCache": "workbench.retrieval",
    "Embedder": "workbench.retrieval",
    "build_index": "workbench.retrieval",
    "load_embedder": "workbench.retrieval",
    # records
    "import_paths": "workbench.cohort.importer",
    "ImportResult": "workbench.cohort.importer",
    "lab_results": "workbench.cohort.labs",
    "trends": "workbench.cohort.labs",
    "normalize": "workbench.cohort.labs",
    "convert": "workbench.cohort.labs",
    "reference_range": "workbench.cohort.labs",
    "flag": "workbench.cohort.labs",
    "ReferenceRange": "workbench.cohort.labs",
    "review_patterns": "workbench.cohort.patterns",
    "review_cohort": "workbench.cohort.patterns",
    "Finding": "workbench.cohort.patterns",
    "CohortDefinition": "workbench.cohort.cohort_builder",
    "CohortResult": "workbench.cohort.cohort_builder",
    "parse_definition": "workbench.cohort.cohort_builder",
    "load_definition": "workbench.cohort.cohort_builder",
    "save_definition": "workbench.cohort.cohort_builder",
    "run_cohort": "workbench.cohort.cohort_builder",
    "run_sql": "workbench.cohort.cohort_builder",
    "pseudonym": "workbench.cohort.deid",
    "deidentified_table": "workbench.cohort.deid",
    "deidentify_text": "workbench.cohort.deid",
    "deidentify_texts": "workbench.cohort.deid",
    "k_anonymity": "workbench.cohort.deid",
    "DeidResult": "workbench.cohort.deid",
    # answers
    "Answer": "workbench.answer",
    "ask": "workbench.answer",
    "explain_labs": "workbench.answer",
    "prepare_visit": "workbench.answer",
    "plain_language": "workbench.answer",
    "extractive_answer": "workbench.answer",
    "parse_citations": "workbench.answer",
    "verify_text": "workbench.answer",
    "EgressGuard": "workbench.answer",
    # workspace
    "Workspace": "workbench.workspace",
    "open_workspace": "workbench.workspace",
    "ConsentLedger": "workbench.workspace",
    "AuditTrail": "workbench.workspace",
    "AuditReport": "workbench.workspace",
    "MemoryEntry": "workbench.workspace",
    "ConversationMemory": "workbench.workspace",
    "erase_source": "workbench.workspace",
    "verify_erasure": "workbench.workspace",
    "export_compartment": "workbench.workspace",
    "PersonalIndex": "workbench.workspace",
    "fhir_bundles": "workbench.workspace",
    "set_retention": "workbench.workspace",
    "get_retention": "workbench.workspace",
    "apply_retention": "workbench.workspace",
}

__all__ = [
    "AccessDenied",
    "Answer",
    "AnswerError",
    "AuditReport",
    "AuditTampered",
    "AuditTrail",
    "Chunk",
    "CohortDefinition",
    "CohortError",
    "CohortResult",
    "ConfigError",
    "ConsentError",
    "ConsentLedger",
    "ConversationMemory",
    "CorpusError",
    "DeidError",
    "DeidResult",
    "DependencyMissing",
    "Document",
    "EgressBlocked",
    "EgressGuard",
    "Embedder",
    "EmbeddingCache",
    "EvidenceIndex",
    "Finding",
    "Hit",
    "ImportResult",
    "IndexCorrupt",
    "IndexError_",
    "IndexMissing",
    "LLMError",
    "MemoryEntry",
    "ModelMismatch",
    "PersonalIndex",
    "ReaderError",
    "RecordFormatError",
    "RecordsError",
    "ReferenceRange",
    "SHIPPED_CORPORA",
    "SearchFilters",
    "Section",
    "Settings",
    "TokenizerCounter",
    "UnitError",
    "UnknownCorpus",
    "WorkbenchError",
    "Workspace",
    "WorkspaceError",
    "WrongPassphrase",
    "apply_retention",
    "ask",
    "build_index",
    "chunk_document",
    "chunk_documents",
    "convert",
    "deidentified_table",
    "deidentify_text",
    "deidentify_texts",
    "erase_source",
    "explain_labs",
    "export_compartment",
    "extractive_answer",
    "fhir_bundles",
    "flag",
    "get_retention",
    "get_settings",
    "import_paths",
    "iter_corpus",
    "iter_path_corpus",
    "iter_shipped",
    "k_anonymity",
    "lab_results",
    "load_definition",
    "load_embedder",
    "load_manifest",
    "normalize",
    "open_workspace",
    "parse_citations",
    "parse_definition",
    "passage_text",
    "plain_language",
    "prepare_visit",
    "pseudonym",
    "read_documents",
    "reference_range",
    "register_corpus",
    "review_cohort",
    "review_patterns",
    "run_cohort",
    "run_sql",
    "save_definition",
    "set_retention",
    "trends",
    "verify_corpora",
    "verify_erasure",
    "verify_text",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # let type checkers and IDEs see the lazy names
    from workbench.answer import (
        Answer,
        EgressGuard,
        ask,
        explain_labs,
        extractive_answer,
        parse_citations,
        plain_language,
        prepare_visit,
        verify_text,
    )
    from workbench.cohort.cohort_builder import (
        CohortDefinition,
        CohortResult,
        load_definition,
        parse_definition,
        run_cohort,
        run_sql,
        save_definition,
    )
    from workbench.cohort.deid import (
        DeidResult,
        deidentified_table,
        deidentify_text,
        deidentify_texts,
        k_anonymity,
        pseudonym,
    )
    from workbench.cohort.importer import ImportResult, import_paths
    from workbench.cohort.labs import (
        ReferenceRange,
        convert,
        flag,
        lab_results,
        normalize,
        reference_range,
        trends,
    )
    from workbench.cohort.patterns import Finding, review_cohort, review_patterns
    from workbench.corpus import (
        SHIPPED_CORPORA,
        TokenizerCounter,
        chunk_document,
        chunk_documents,
        iter_corpus,
        iter_path_corpus,
        iter_shipped,
        load_manifest,
        passage_text,
        read_documents,
        register_corpus,
        verify_corpora,
    )
    from workbench.retrieval import (
        Embedder,
        EmbeddingCache,
        EvidenceIndex,
        SearchFilters,
        build_index,
        load_embedder,
    )
    from workbench.workspace import (
        AuditReport,
        AuditTrail,
        ConsentLedger,
        ConversationMemory,
        MemoryEntry,
        PersonalIndex,
        Workspace,
        apply_retention,
        erase_source,
        export_compartment,
        fhir_bundles,
        get_retention,
        open_workspace,
        set_retention,
        verify_erasure,
    )
