"""BEIR corpus reader: one JSON object per line, ``{"_id", "title", "text", "metadata"}``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from workbench.corpus._io import BytesLines, ErrorSink, open_binary, reader_error, report, squash
from workbench.types import Document, Section, SourceKind

#: Section name for a whole abstract without structure labels.
ABSTRACT = "Abstract"


def read_beir_jsonl(
    path: str | Path,
    *,
    corpus: str = "beir",
    source_kind: SourceKind = "abstract",
    errors: ErrorSink = None,
) -> Iterator[Document]:
    """Stream Documents from a BEIR ``corpus.jsonl`` (plain or gzip), one line at a time.

    A malformed line (bad JSON, not UTF-8, no ``_id``) is a record-level error: raised, or collected
    into ``errors`` and skipped. Blank lines are ignored. Damaged gzip always raises.
    """
    path = Path(path)
    with open_binary(path) as fh:
        yield from iter_beir_stream(fh, str(path), corpus=corpus, source_kind=source_kind, errors=errors)


def iter_beir_stream(
    fh: IO[bytes],
    source_name: str,
    *,
    corpus: str = "beir",
    source_kind: SourceKind = "abstract",
    errors: ErrorSink = None,
) -> Iterator[Document]:
    """Stream Documents from an open (decompressed) BEIR JSONL byte stream; ``source_name`` is for messages."""
    for lineno, raw in BytesLines(fh, source_name):
        if not raw.strip():
            continue
        doc = _parse_line(raw, source_name, lineno, corpus, source_kind, errors)
        if doc is not None:
            yield doc


def _parse_line(
    raw: bytes, path: str, lineno: int, corpus: str, source_kind: SourceKind, errors: ErrorSink
) -> Document | None:
    where = f"line {lineno}"
    try:
        # A byte-order mark (Windows editors) may open the first line.
        obj: Any = json.loads(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))
    except UnicodeDecodeError as exc:
        report(
            reader_error(path, where, f"not valid UTF-8 at byte {exc.start}", "Convert the file to UTF-8."),
            errors,
        )
        return None
    except json.JSONDecodeError as exc:
        report(reader_error(path, where, f"malformed JSON ({exc.msg}, column {exc.colno})"), errors)
        return None
    if not isinstance(obj, dict) or obj.get("_id") in (None, ""):
        report(reader_error(path, where, 'not a BEIR record (needs an object with "_id")'), errors)
        return None
    doc_id = str(obj["_id"])
    text = obj.get("text") or ""
    title = obj.get("title") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        report(reader_error(path, f"{where}, _id {doc_id}", '"title" and "text" must be strings'), errors)
        return None
    meta_in = obj.get("metadata")
    metadata: dict[str, Any] = dict(meta_in) if isinstance(meta_in, dict) else {}
    metadata.setdefault("source_file", Path(path).name)
    metadata.setdefault("source_line", lineno)
    if not text.strip() and title.strip():
        # A record without an abstract is still findable (and citable) by its title.
        text = squash(title)
        sections = [Section("Title", 0, len(text))]
    else:
        sections = [Section(ABSTRACT, 0, len(text))] if text else []
    return Document(
        doc_id=doc_id,
        title=squash(title),
        text=text,
        corpus=corpus,
        source_kind=source_kind,
        sections=sections,
        metadata=metadata,
    )
