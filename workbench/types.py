"""Pure data shared across the workbench: documents, chunks, search hits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SourceKind = Literal["abstract", "guideline", "qa", "user_document"]


@dataclass(frozen=True, slots=True)
class Section:
    """A named span of a document's text (e.g. an abstract's METHODS)."""

    name: str
    start: int
    end: int


@dataclass(slots=True)
class Document:
    """One source document as read from a corpus file.

    ``text`` is the full text that chunk offsets refer to; ``sections`` partition it.
    ``metadata`` carries citation fields: pmid, doi, url, journal, year, publication_types, mesh.
    """

    doc_id: str
    title: str
    text: str
    corpus: str
    source_kind: SourceKind = "abstract"
    sections: list[Section] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Chunk:
    """A retrievable passage: exact character span [start, end) of its document's text."""

    chunk_id: str
    doc_id: str
    text: str
    corpus: str
    title: str
    section: str
    start: int
    end: int
    source_kind: SourceKind = "abstract"
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Hit:
    """One search result. ``score`` is the fused score for hybrid search."""

    chunk_id: str
    doc_id: str
    score: float
    title: str
    source: str
    snippet: str
    text: str = ""
    section: str = ""
    start: int = 0
    end: int = 0
    corpus: str = ""
    source_kind: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
