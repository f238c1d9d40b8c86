"""Readers for a user's own documents: Markdown, HTML, PDF and plain text.

Each parser takes the file's bytes and returns one Document whose sections follow the
document's own structure: headings (Markdown ``#``/setext, HTML ``h1``-``h6``; a section runs
from its heading to the next heading and is named by the heading path, e.g. "Dosing > Children")
or pages for PDF ("page 3"). Text that is not UTF-8 is decoded as cp1252/latin-1 with a warning.
"""

from __future__ import annotations

import hashlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from workbench.corpus._io import decode_text, log, reader_error, squash, tidy
from workbench.errors import DependencyMissing
from workbench.types import Document, Section, SourceKind

USER: SourceKind = "user_document"


def _metadata(data: bytes, source_name: str, **extra: Any) -> dict[str, Any]:
    # The content hash ties every chunk back to the exact file version (provenance, erasure).
    return {"source_file": source_name, "sha256": hashlib.sha256(data).hexdigest(), **extra}


def _headed_sections(text: str, heads: list[tuple[int, int, str]]) -> list[Section]:
    """Sections from (line_start, level, heading) marks: each runs to the next heading; names are heading paths."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    first = heads[0][0] if heads else len(text)
    if text[:first].strip():
        end = len(text[:first].rstrip())
        sections.append(Section("", 0, end))
    for i, (start, level, name) in enumerate(heads):
        stop = heads[i + 1][0] if i + 1 < len(heads) else len(text)
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, name))
        end = start + len(text[start:stop].rstrip())
        if end > start:
            sections.append(Section(" > ".join(n for _, n in path if n), start, end))
    return sections


# ---------------------------------------------------------------------------------------------- Markdown

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_INLINE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|[*_`]+")


def _plain_heading(s: str) -> str:
    return squash(_INLINE.sub(lambda m: m.group(1) or "", s))


def parse_markdown(
    data: bytes, *, source_name: str, doc_id: str, corpus: str = "user", source_kind: SourceKind = USER
) -> Document:
    """One Document from Markdown bytes; sections follow ATX (``#``) and setext headings outside code fences."""
    text = decode_text(data, source_name, strict=False).replace("\r\n", "\n").replace("\r", "\n")
    title = ""
    front = _FRONT.match(text)
    if front:
        m = re.search(r"^title:[ \t]*(.+)$", front.group(1), re.M)
        if m:
            title = squash(m.group(1).strip("'\""))
        text = text[front.end() :]
    heads: list[tuple[int, int, str]] = []
    fence: str | None = None
    pos = 0
    prev_start, prev_line = -1, ""
    for line in text.split("\n"):
        start = pos
        pos += len(line) + 1
        f = _FENCE.match(line)
        if f:
            mark = f.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
            prev_line = ""
            continue
        if fence is not None:
            continue
        atx = _ATX.match(line)
        if atx:
            heads.append((start, len(atx.group(1)), _plain_heading(atx.group(2) or "")))
            prev_line = ""
            continue
        st = _SETEXT.match(line)
        if (
            st
            and prev_line.strip()
            and not _ATX.match(prev_line)
            and (not heads or heads[-1][0] != prev_start)
        ):
            heads.append((prev_start, 1 if st.group(1)[0] == "=" else 2, _plain_heading(prev_line)))
            prev_line = ""
            continue
        prev_start, prev_line = start, line
    text = text.rstrip()
    heads = [h for h in heads if h[0] < len(text)]
    if not title:
        top = [h for h in heads if h[1] == 1 and h[2]] or [h for h in heads if h[2]]
        title = top[0][2] if top else Path(source_name).stem
    return Document(
        doc_id=doc_id,
        title=title,
        text=text,
        corpus=corpus,
        source_kind=source_kind,
        sections=_headed_sections(text, heads),
        metadata=_metadata(data, source_name, format="markdown"),
    )


# -------------------------------------------------------------------------------------------------- HTML

# Invisible or boilerplate content: never evidence. (<nav> menus repeat on every page of a site.)
_SKIP = frozenset(
    {"script", "style", "noscript", "template", "svg", "iframe", "object", "head", "math", "nav"}
)
_BLOCK = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer form header hr li main nav "
    "ol p pre section table tbody thead tfoot tr td th ul caption details summary".split()
)
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())


class _HTMLText(HTMLParser):
    """Collect visible text as blocks, remembering which blocks are headings (and their level)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[int, str]] = []  # (heading level or 0, text)
        self.title = ""
        self._buf: list[str] = []
        self._skip = 0
        self._pre = 0
        self._in_title = False
        self._title_done = False  # only the document's first <title> (an <svg><title> is not the page title)
        self._heading = 0
        self._stack: list[str] = []

    def _flush(self) -> None:
        raw = "".join(self._buf)
        self._buf = []
        text = tidy(raw) if self._pre else squash(raw)
        if text:
            self.blocks.append((self._heading, text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag == "br" and self._pre:
                self._buf.append("\n")
            elif tag in ("br", "hr"):
                self._flush()  # a line break outside <pre> separates blocks
            return
        self._stack.append(tag)
        if tag == "title" and not self._title_done:
            self._in_title = True
        if tag in _SKIP:
            self._skip += 1
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCK:
            self._flush()
            if tag == "pre":
                self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._stack:
            return  # stray end tag
        while self._stack:  # close unclosed children too (forgiving, like browsers)
            open_tag = self._stack.pop()
            self._close(open_tag)
            if open_tag == tag:
                break

    def _close(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self._title_done = True
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _HEADINGS:
            self._flush()
            self._heading = 0
        elif tag in _BLOCK:
            self._flush()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._skip:
            return
        self._buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def parse_html(
    data: bytes, *, source_name: str, doc_id: str, corpus: str = "user", source_kind: SourceKind = USER
) -> Document:
    """One Document from HTML bytes: visible text only (no scripts/styles), sections from h1-h6."""
    head = data[:2048].decode("ascii", "ignore")
    m = re.search(r"<meta[^>]+charset=[\"']?([\w-]+)", head, re.I)
    text_in: str | None = None
    if m and m.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        try:
            text_in = data.decode(m.group(1))
        except (LookupError, UnicodeDecodeError):
            text_in = None
    if text_in is None:
        text_in = decode_text(data, source_name, strict=False)
    parser = _HTMLText()
    parser.feed(text_in)
    parser.close()
    parts: list[str] = []
    heads: list[tuple[int, int, str]] = []
    pos = 0
    for level, block in parser.blocks:
        if parts:
            pos += 2 if level else 1  # a blank line before headings, a line break between other blocks
            parts.append("\n\n" if level else "\n")
        if level:
            heads.append((pos, level, block))
        parts.append(block)
        pos += len(block)
    text = "".join(parts)
    title = (
        squash(parser.title) or next((b for lv, b in parser.blocks if lv == 1), "") or Path(source_name).stem
    )
    return Document(
        doc_id=doc_id,
        title=title,
        text=text,
        corpus=corpus,
        source_kind=source_kind,
        sections=_headed_sections(text, heads),
        metadata=_metadata(data, source_name, format="html"),
    )


# --------------------------------------------------------------------------------------------------- PDF


def parse_pdf(
    data: bytes, *, source_name: str, doc_id: str, corpus: str = "user", source_kind: SourceKind = USER
) -> Document:
    """One Document from PDF bytes with pypdf: one section per page with text ("page N")."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover - pypdf is a core dependency
        raise DependencyMissing("reading PDF needs pypdf: pip install pypdf") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise reader_error(
                source_name, None, "the PDF is encrypted", "Save an unencrypted copy and add that."
            )
        pages = list(reader.pages)
    except PdfReadError as exc:
        raise reader_error(
            source_name, None, f"not a readable PDF ({exc})", "Re-export or re-download it."
        ) from exc
    parts: list[str] = []
    sections: list[Section] = []
    empty: list[int] = []
    pos = 0
    for n, page in enumerate(pages, start=1):
        try:
            body = tidy(page.extract_text() or "")
        except Exception as exc:  # noqa: BLE001 - pypdf raises many types on odd pages; one page must not sink the file
            log.warning("%s (page %d): text extraction failed (%s)", source_name, n, type(exc).__name__)
            body = ""
        if not body:
            empty.append(n)  # scanned or image-only page: needs OCR, which is out of scope
            continue
        if parts:
            pos += 2
        sections.append(Section(f"page {n}", pos, pos + len(body)))
        parts.append(body)
        pos += len(body)
    info_title = ""
    try:
        meta = reader.metadata
        info_title = squash(str(meta.title)) if meta is not None and meta.title else ""
    except Exception:  # noqa: BLE001 - broken info dictionaries are common and harmless
        info_title = ""
    if empty:
        log.warning("%s: %d page(s) without extractable text", source_name, len(empty))
    return Document(
        doc_id=doc_id,
        title=info_title or Path(source_name).stem,
        text="\n\n".join(parts),
        corpus=corpus,
        source_kind=source_kind,
        sections=sections,
        metadata=_metadata(data, source_name, format="pdf", pages=len(pages), pages_without_text=empty),
    )


# ------------------------------------------------------------------------------------------------ text


def parse_text(
    data: bytes, *, source_name: str, doc_id: str, corpus: str = "user", source_kind: SourceKind = USER
) -> Document:
    """One Document from a plain-text file (one unnamed section)."""
    text = tidy(decode_text(data, source_name, strict=False))
    return Document(
        doc_id=doc_id,
        title=Path(source_name).stem,
        text=text,
        corpus=corpus,
        source_kind=source_kind,
        sections=[Section("", 0, len(text))] if text else [],
        metadata=_metadata(data, source_name, format="text"),
    )
