"""One entry point for every document format: :func:`read_documents`.

Formats: ``beir`` (JSONL), ``pubmed`` (MEDLINE XML), ``pubmedqa`` (ori_pqal JSON), ``medquad``
(XML), ``markdown``, ``html``, ``pdf`` and ``text``. Any of them may be gzip-compressed, and
``.tar``/``.tar.gz``/``.tgz``/``.zip`` archives are read member by member without extracting to disk.
The format comes from ``format=``, else the file extension, else the first bytes.

Error policy: see :mod:`workbench.corpus._io`. In a folder or archive each file/member is a
record: a file that cannot be read is raised, or collected into ``errors`` and skipped.
Files of unsupported types in a folder are skipped with a log warning.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from workbench.corpus._io import GZIP_ERRORS, GZIP_MAGIC, ErrorSink, log, open_binary, reader_error, report
from workbench.corpus.beir import iter_beir_stream
from workbench.corpus.medquad import parse_medquad
from workbench.corpus.pubmed import iter_pubmed_stream
from workbench.corpus.pubmedqa import iter_pubmedqa_stream
from workbench.corpus.userdocs import parse_html, parse_markdown, parse_pdf, parse_text
from workbench.errors import ReaderError
from workbench.types import Document

FORMATS: tuple[str, ...] = ("beir", "pubmed", "pubmedqa", "medquad", "markdown", "html", "pdf", "text")

_BY_SUFFIX = {
    ".jsonl": "beir",
    ".ndjson": "beir",
    ".json": "pubmedqa",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".txt": "text",
    ".text": "text",
    ".xml": "xml",  # resolved by the root element
}
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
_DEFAULT_CORPUS = {"beir": "beir", "pubmed": "pubmed", "pubmedqa": "pubmedqa", "medquad": "medquad"}
_ROOT_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_MAX_MEMBER = 512 << 20  # an archive member larger than this is refused rather than read into memory


def _xml_kind(head: bytes) -> str | None:
    m = _ROOT_TAG.search(head)
    if not m:
        return None
    tag = m.group(1).decode("ascii", "replace")
    if tag in ("PubmedArticleSet", "PubmedArticle"):
        return "pubmed"
    if tag in ("Document", "doc", "DiseaseFile"):
        return "medquad"
    if tag.lower() == "html":
        return "html"
    return None


def detect_format(name: str, head: bytes = b"") -> str | None:
    """Guess a format from a file name (``.gz`` ignored) and, failing that, the first decompressed bytes."""
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    fmt = _BY_SUFFIX.get(PurePosixPath(lower).suffix)
    if fmt == "xml":
        return _xml_kind(head)
    if fmt == "pubmedqa" and head and b'"CONTEXTS"' not in head:
        return None  # some other JSON file (a folder may hold package.json, settings, ...)
    if fmt is not None:
        return fmt
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"%PDF"):
        return "pdf"
    if stripped.startswith(b"<"):
        if re.match(rb"<!doctype html|<html", stripped, re.I):
            return "html"
        return _xml_kind(stripped)
    if stripped.startswith(b"{"):
        first = stripped.split(b"\n", 1)[0]
        return "beir" if b'"_id"' in first else "pubmedqa"
    return None


def _is_archive(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _head(path: Path) -> bytes:
    try:
        with open_binary(path) as fh:
            return fh.read(4096)
    except GZIP_ERRORS:
        return b""  # damaged gzip: the real read will raise with a clear message


def _dispatch(
    fh: IO[bytes], source: str, rel: str, fmt: str, corpus: str | None, errors: ErrorSink
) -> Iterator[Document]:
    """Run the reader for ``fmt`` over an open, decompressed byte stream."""
    name = corpus or _DEFAULT_CORPUS.get(fmt, "user")
    if fmt == "beir":
        yield from iter_beir_stream(fh, source, corpus=name, errors=errors)
    elif fmt == "pubmed":
        yield from iter_pubmed_stream(fh, source, corpus=name, errors=errors)
    elif fmt == "pubmedqa":
        yield from iter_pubmedqa_stream(fh, source, corpus=name, errors=errors)
    else:
        try:
            data = fh.read()
        except GZIP_ERRORS as exc:
            raise reader_error(
                source, None, f"damaged or truncated gzip data ({exc})", "Re-download the file."
            ) from exc
        if fmt == "medquad":
            doc = parse_medquad(data, source_name=rel, corpus=name)
        else:
            parser = {"markdown": parse_markdown, "html": parse_html, "pdf": parse_pdf, "text": parse_text}[
                fmt
            ]
            # User documents are identified by their path inside the corpus, stable across re-reads.
            doc = parser(data, source_name=rel, doc_id=f"{name}:{rel}", corpus=name)
        if doc.text:
            yield doc
        else:
            log.info("%s: no text to index", source)


def _unsupported(source: str) -> ReaderError:
    return reader_error(
        source, None, "unsupported or unrecognised format", f"Pass format= one of {', '.join(FORMATS)}."
    )


def _read_file(
    path: Path, rel: str, corpus: str | None, fmt: str | None, errors: ErrorSink
) -> Iterator[Document]:
    if path.name.lower().endswith(".zip"):
        yield from _read_zip(path, corpus, fmt, errors)
        return
    if _is_archive(path.name):
        yield from _read_tar(path, corpus, fmt, errors)
        return
    kind = fmt or detect_format(path.name, _head(path))
    if kind is None:
        raise _unsupported(str(path))
    if kind not in FORMATS:
        raise reader_error(path, None, f"unknown format {kind!r}", f"Use one of {', '.join(FORMATS)}.")
    with open_binary(path) as fh:
        yield from _dispatch(fh, str(path), rel, kind, corpus, errors)


def _skip_member(name: str) -> bool:
    """Hidden files and macOS resource forks (``__MACOSX/``, ``._x``) are not documents."""
    return any(p.startswith((".", "__MACOSX")) for p in PurePosixPath(name).parts)


def _read_member(
    archive: Path, name: str, data: bytes, corpus: str | None, fmt: str | None, errors: ErrorSink
) -> Iterator[Document]:
    """Read one archive member from its bytes; its problems are record-level errors."""
    where = f"{archive}!{name}"
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except GZIP_ERRORS as exc:
            report(reader_error(where, None, f"damaged gzip member ({exc})"), errors)
            return
    kind = fmt or detect_format(name, data[:4096])
    if kind is None:
        log.warning("%s: skipped (unsupported type)", where)
        return
    try:
        yield from _dispatch(io.BytesIO(data), where, name, kind, corpus, errors)
    except ReaderError as exc:
        report(exc, errors)


def _read_tar(path: Path, corpus: str | None, fmt: str | None, errors: ErrorSink) -> Iterator[Document]:
    """Stream the members of a tar archive in order (``r|*`` never seeks, so gzip is read once)."""
    member = "the archive header"
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                member = info.name
                if not info.isfile() or _skip_member(info.name):
                    continue
                if info.size > _MAX_MEMBER:
                    report(
                        reader_error(f"{path}!{info.name}", None, f"member too large ({info.size} bytes)"),
                        errors,
                    )
                    continue
                extracted = tar.extractfile(info)
                if extracted is not None:
                    yield from _read_member(path, info.name, extracted.read(), corpus, fmt, errors)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise reader_error(
            path,
            f"at member {member}",
            f"damaged or truncated archive ({exc})",
            "Re-download it; the members before this point were read.",
        ) from exc


def _read_zip(path: Path, corpus: str | None, fmt: str | None, errors: ErrorSink) -> Iterator[Document]:
    """Read the members of a zip archive in name order, without extracting to disk."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise reader_error(
            path, None, f"damaged or truncated zip archive ({exc})", "Re-download it."
        ) from exc
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir() or _skip_member(info.filename):
                continue
            where = f"{path}!{info.filename}"
            if info.file_size > _MAX_MEMBER:
                report(reader_error(where, None, f"member too large ({info.file_size} bytes)"), errors)
                continue
            try:
                data = zf.read(info)
            except (zipfile.BadZipFile, zlib.error, RuntimeError, OSError) as exc:  # RuntimeError: encrypted
                report(reader_error(where, None, f"cannot extract ({exc})"), errors)
                continue
            yield from _read_member(path, info.filename, data, corpus, fmt, errors)


def read_documents(
    path: str | Path,
    *,
    corpus: str | None = None,
    format: str | None = None,
    errors: ErrorSink = None,
) -> Iterator[Document]:
    """Stream Documents from a file, an archive or a folder (recursively, sorted, hidden files skipped).

    Args:
        path: a corpus file, a ``.tar(.gz)`` archive or a folder of documents.
        corpus: corpus name stamped on every Document (default: the format's name, or "user").
        format: one of :data:`FORMATS`; detected from the extension or content when omitted.
        errors: collect record-level ReaderErrors here and keep going; without it the first one raises.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise reader_error(p, None, "no such file or folder")
    if format is not None and format not in FORMATS:
        raise reader_error(p, None, f"unknown format {format!r}", f"Use one of {', '.join(FORMATS)}.")
    if p.is_file():
        yield from _read_file(p, p.name, corpus, format, errors)
        return
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        rel = f.relative_to(p).as_posix()
        if any(part.startswith(".") for part in f.relative_to(p).parts):
            continue
        if format is None and not _is_archive(f.name) and detect_format(f.name, _head(f)) is None:
            log.warning("%s: skipped (unsupported type)", f)
            continue
        try:
            yield from _read_file(f, rel, corpus, format, errors)
        except ReaderError as exc:
            report(exc, errors)
