"""Shared plumbing for the readers: opening plain/gzip files, error collection, text clean-up.

Error policy (the same for every reader):

* **Record-level problems** (one malformed JSONL line, one PubMed article without a PMID, one
  MedQuAD file in a folder that does not parse) raise :class:`~workbench.errors.ReaderError`
  when the caller passed no ``errors`` sink.  When the caller passes ``errors=[]`` (or a callable
  taking the ReaderError) the error is appended (or passed) there, a warning is logged (file and
  record id only, never text) and reading goes on.
* **File-level problems** (truncated gzip, truncated or malformed XML, JSON that cannot be
  resynchronised, a file in an unknown format) always raise :class:`ReaderError`.  Readers are
  generators, so every document before the damage has already been yielded by then.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from workbench.errors import ReaderError

log = logging.getLogger("workbench.corpus")

#: Where record-level errors go: None raises, a list collects, a callable is called with each one.
ErrorSink = list[ReaderError] | Callable[[ReaderError], None] | None

GZIP_MAGIC = b"\x1f\x8b"

#: Exceptions that mean "the compressed stream is damaged or cut short".
GZIP_ERRORS: tuple[type[BaseException], ...] = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


def reader_error(path: Path | str, record: str | None, problem: str, hint: str = "") -> ReaderError:
    """Build a ReaderError whose message names the file, the record and what to do."""
    where = f"{path}" + (f" ({record})" if record else "")
    msg = f"{where}: {problem}"
    if hint:
        msg += f". {hint}"
    return ReaderError(msg)


def report(err: ReaderError, errors: ErrorSink) -> None:
    """Apply the record-level policy: raise without a sink, else collect, log and go on."""
    if errors is None:
        raise err
    if isinstance(errors, list):
        errors.append(err)
    else:
        errors(err)
    log.warning("skipped record: %s", err)


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its extension)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


@contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes]]:
    """Open a file for binary reading, transparently decompressing gzip."""
    if is_gzip(path):
        with gzip.open(path, "rb") as gz:
            yield cast(IO[bytes], gz)
    else:
        with open(path, "rb") as fh:
            yield fh


def read_bytes(path: Path) -> bytes:
    """Whole (decompressed) content of a small file; gzip damage becomes a ReaderError."""
    try:
        with open_binary(path) as fh:
            return fh.read()
    except GZIP_ERRORS as exc:
        raise reader_error(
            path, None, f"damaged or truncated gzip data ({exc})", "Re-download the file."
        ) from exc


def decode_text(data: bytes, path: Path | str, *, strict: bool) -> str:
    """Decode UTF-8 (BOM allowed); otherwise fall back to cp1252/latin-1 with a warning unless ``strict``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if strict:
            raise reader_error(
                path, f"byte {exc.start}", "not valid UTF-8", "Convert the file to UTF-8 and read it again."
            ) from exc
    for enc in ("cp1252", "latin-1"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        log.warning("%s is not UTF-8; decoded as %s", path, enc)
        return text
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*")
_EDGE = re.compile(r" *\n *")


def tidy(text: str) -> str:
    """Collapse runs of spaces, keep line breaks and (at most one) blank line between paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = _EDGE.sub("\n", text)
    text = _BLANKS.sub("\n\n", text)
    return text.strip()


def squash(text: str) -> str:
    """Collapse all whitespace (line breaks included) to single spaces: titles, labels."""
    return " ".join(text.split())


class BytesLines:
    """Iterate ``(line_number, bytes)`` over a binary stream, turning gzip damage into ReaderError."""

    def __init__(self, fh: IO[bytes], path: Path | str) -> None:
        self._fh = fh
        self._path = path

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        lineno = 0
        while True:
            try:
                line = self._fh.readline()
            except GZIP_ERRORS as exc:
                raise reader_error(
                    self._path,
                    f"after line {lineno}",
                    f"damaged or truncated gzip data ({exc})",
                    "Re-download or re-compress the file; the lines before this point were read.",
                ) from exc
            if not line:
                return
            lineno += 1
            yield lineno, line
