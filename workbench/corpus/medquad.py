"""MedQuAD reader: one XML file per NIH/CDC page -> one Document, one section per question/answer pair."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from workbench.corpus._io import ErrorSink, read_bytes, reader_error, report, squash, tidy
from workbench.errors import ReaderError
from workbench.types import Document, Section, SourceKind

# Most files use <Document>/<QAPair>; a few NINDS files use <doc>/<pair> and one CDC file <DiseaseFile>.
_ROOTS = ("Document", "doc", "DiseaseFile")


def _child(elem: ET.Element, *names: str) -> ET.Element | None:
    for name in names:
        found = elem.find(name)
        if found is not None:
            return found
    return None


def _text(elem: ET.Element | None) -> str:
    return "".join(elem.itertext()) if elem is not None else ""


def parse_medquad(
    data: bytes, *, source_name: str, corpus: str = "medquad", source_kind: SourceKind = "guideline"
) -> Document:
    """Build the Document of one MedQuAD XML file from its bytes; ``source_name`` names it in errors."""
    try:
        root = DET.fromstring(data, forbid_dtd=True)
    except ET.ParseError as exc:
        raise reader_error(
            source_name, None, f"malformed XML ({exc})", "Replace the file with a clean copy."
        ) from exc
    except DefusedXmlException as exc:
        raise reader_error(
            source_name,
            None,
            f"refused unsafe XML ({type(exc).__name__})",
            "MedQuAD files need no DTD or entities.",
        ) from exc
    if root.tag not in _ROOTS:
        raise reader_error(
            source_name, None, f"not a MedQuAD file (root element <{root.tag}>, expected <Document>)"
        )
    source = root.get("source") or root.get("corpus") or ""
    raw_id = root.get("id") or root.get("docid") or root.get("fid") or Path(source_name).stem
    # Ids restart at 0000001 in every subset and a few CancerGov files share one id attribute
    # (0000013_2_1.xml says id="0000013_2"), so the id is the source site plus the file name.
    stem = Path(source_name).name.split(".")[0] or raw_id
    doc_id = f"{source}-{stem}" if source else stem
    focus = squash(_text(_child(root, "Focus", "doctitle-focus")))
    parts: list[str] = []
    sections: list[Section] = []
    qtypes: list[str] = []
    pos = 0
    for pair in root.iter():
        if pair.tag not in ("QAPair", "pair"):
            continue
        q = _child(pair, "Question", "question")
        answer = tidy(_text(_child(pair, "Answer", "answer")))
        if q is None or not answer:
            continue  # MedQuAD withdrew some answers (copyright); a question alone is no evidence
        question = squash(_text(q))
        if parts:
            pos += 2
        sections.append(Section(question, pos, pos + len(answer)))
        qtypes.append(q.get("qtype") or "")
        parts.append(answer)
        pos += len(answer)
    metadata: dict[str, Any] = {
        "url": root.get("url") or "",
        "source": source,
        "document_id": raw_id,
        "focus": focus,
        "qtypes": qtypes,
        "source_file": Path(source_name).name,
    }
    group = next((_text(e) for e in root.iter() if e.tag in ("SemanticGroup", "semanticGroup")), "")
    if group.strip():
        metadata["semantic_group"] = squash(group)
    return Document(
        doc_id=doc_id,
        title=focus or doc_id,
        text="\n\n".join(parts),
        corpus=corpus,
        source_kind=source_kind,
        sections=sections,
        metadata=metadata,
    )


def read_medquad(
    path: str | Path,
    *,
    corpus: str = "medquad",
    source_kind: SourceKind = "guideline",
    errors: ErrorSink = None,
) -> Iterator[Document]:
    """Stream Documents from one MedQuAD XML file or a folder of them (recursively, sorted).

    In a folder each file is one record: a malformed file is raised, or collected into ``errors``
    and skipped. Files with no answered question yield nothing.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*.xml") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        try:
            doc = parse_medquad(read_bytes(f), source_name=str(f), corpus=corpus, source_kind=source_kind)
        except ReaderError as exc:
            report(exc, errors)
            continue
        if doc.text:
            yield doc
