"""PubMedQA reader (``ori_pqal.json`` layout): one Document per PMID, its CONTEXTS as sections.

The file is one JSON object keyed by PMID. Rather than ``json.load`` the whole file (or add
``ijson``), :func:`iter_json_object_items` decodes one top-level member at a time with the
standard library's ``raw_decode`` over a sliding buffer, so memory stays at one record plus a
64 KiB window and a damaged record is reported by its PMID.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from workbench.corpus._io import GZIP_ERRORS, ErrorSink, open_binary, reader_error, report, squash
from workbench.types import Document, Section, SourceKind

_READ = 1 << 16
_WS = " \t\r\n"

#: Fields of a PubMedQA record that are answers/labels, never shipped or copied into a context corpus.
LABEL_FIELDS = ("final_decision", "LONG_ANSWER", "reasoning_required_pred", "reasoning_free_pred")


class _Buffer:
    """A decoded text window over a binary stream that grows on demand."""

    def __init__(self, fh: IO[bytes], path: Path | str) -> None:
        self.fh = fh
        self.path = path
        self.text = ""
        self.pos = 0
        self.eof = False
        self._dec = codecs.getincrementaldecoder("utf-8-sig")()

    def more(self, record: str | None) -> bool:
        """Read another block; False at end of file."""
        if self.eof:
            return False
        try:
            raw = self.fh.read(_READ)
        except GZIP_ERRORS as exc:
            raise reader_error(self.path, record, f"damaged or truncated gzip data ({exc})") from exc
        try:
            chunk = self._dec.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise reader_error(self.path, record, "not valid UTF-8", "Convert the file to UTF-8.") from exc
        if not raw:
            self.eof = True
        # Drop what was consumed so the buffer holds roughly one record.
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def skip_ws(self, record: str | None) -> str:
        """Advance past whitespace and return the next character ('' at end of file)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more(record):
                return ""

    def decode_value(self, decoder: json.JSONDecoder, record: str | None) -> Any:
        """Decode one JSON value at the cursor, reading more text until it is complete."""
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # Errors near the end of the window (or an open string) may just mean "read more";
                # an error well inside the window is real and needs no further reading.
                truncated = exc.pos >= len(self.text) - 8 or exc.msg.startswith("Unterminated")
                if truncated and self.more(record):
                    continue
                raise reader_error(
                    self.path, record, f"malformed or truncated JSON ({exc.msg})", "Re-download the file."
                ) from exc
            # A number at the end of the window may continue in the next block.
            if end == len(self.text) and not self.eof and isinstance(value, int | float):
                self.more(record)
                continue
            self.pos = end
            return value


def iter_json_object_items(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, value)`` of a top-level JSON object one member at a time (plain or gzip)."""
    path = Path(path)
    with open_binary(path) as fh:
        yield from iter_json_object_stream(fh, str(path))


def iter_json_object_stream(fh: IO[bytes], path: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, value)`` of a top-level JSON object from an open byte stream."""
    decoder = json.JSONDecoder()
    buf = _Buffer(fh, path)
    if buf.skip_ws(None) != "{":
        raise reader_error(path, None, "expected a JSON object at the top level")
    buf.pos += 1
    key: str | None = None
    first = True
    while True:
        where = f"after PMID {key}" if key else "at the start"
        ch = buf.skip_ws(where)
        if ch == "}":
            return
        if not first:
            if ch != ",":
                raise reader_error(
                    path, where, f"expected ',' or '}}' but found {ch!r}", "The file is damaged."
                )
            buf.pos += 1
            buf.skip_ws(where)
        first = False
        k = buf.decode_value(decoder, where)
        if not isinstance(k, str):
            raise reader_error(path, where, "object key is not a string")
        key = k
        if buf.skip_ws(f"PMID {key}") != ":":
            raise reader_error(path, f"PMID {key}", "expected ':' after the key")
        buf.pos += 1
        buf.skip_ws(f"PMID {key}")
        yield key, buf.decode_value(decoder, f"PMID {key}")


def read_pubmedqa(
    path: str | Path,
    *,
    corpus: str = "pubmedqa",
    source_kind: SourceKind = "abstract",
    errors: ErrorSink = None,
) -> Iterator[Document]:
    """Stream one Document per PMID: text = CONTEXTS joined by blank lines, sections = LABELS.

    Metadata keeps pmid, year, mesh and question; answer fields (final_decision, LONG_ANSWER)
    are never copied. A record with a bad shape is a record-level error (see ``_io``).
    """
    path = Path(path)
    with open_binary(path) as fh:
        yield from iter_pubmedqa_stream(fh, str(path), corpus=corpus, source_kind=source_kind, errors=errors)


def iter_pubmedqa_stream(
    fh: IO[bytes],
    path: str,
    *,
    corpus: str = "pubmedqa",
    source_kind: SourceKind = "abstract",
    errors: ErrorSink = None,
) -> Iterator[Document]:
    """Stream PubMedQA Documents from an open (decompressed) byte stream; ``path`` is for messages."""
    for pmid, rec in iter_json_object_stream(fh, path):
        where = f"PMID {pmid}"
        if not isinstance(rec, dict):
            report(reader_error(path, where, "record is not an object"), errors)
            continue
        contexts = rec.get("CONTEXTS")
        labels = rec.get("LABELS") or []
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            report(reader_error(path, where, "CONTEXTS must be a list of strings"), errors)
            continue
        if not isinstance(labels, list) or (labels and len(labels) != len(contexts)):
            report(reader_error(path, where, "LABELS must be a list as long as CONTEXTS"), errors)
            continue
        parts: list[str] = []
        sections: list[Section] = []
        pos = 0
        for i, ctx in enumerate(contexts):
            ctx = ctx.strip()
            if not ctx:
                continue
            if parts:
                pos += 2  # the "\n\n" separator
            name = squash(str(labels[i])) if labels and labels[i] else ""
            sections.append(Section(name, pos, pos + len(ctx)))
            parts.append(ctx)
            pos += len(ctx)
        year = rec.get("YEAR")
        meshes = rec.get("MESHES") or []
        metadata: dict[str, Any] = {
            "pmid": str(pmid),
            "year": int(year) if isinstance(year, str) and year.isdigit() else year,
            "mesh": [str(m) for m in meshes] if isinstance(meshes, list) else [],
            "question": rec.get("QUESTION") or "",
            "source_file": Path(path).name,
        }
        # The question is not the title: PubMedQA questions are rephrased titles, and indexing them
        # would let a question-to-context benchmark match on itself.
        yield Document(
            doc_id=str(pmid),
            title=f"PMID {pmid}",
            text="\n\n".join(parts),
            corpus=corpus,
            source_kind=source_kind,
            sections=sections,
            metadata=metadata,
        )
