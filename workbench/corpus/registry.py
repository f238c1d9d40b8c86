"""Shipped corpora (``corpora/manifest.json``) and user folders registered as corpora.

The manifest lists, for each shipped corpus, its files with sha256 and size, its format, source,
licence and document count. :func:`verify_corpora` checks the files against it;
:func:`iter_corpus` streams a corpus's Documents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from workbench.corpus._io import ErrorSink
from workbench.errors import CorpusError, UnknownCorpus
from workbench.settings import Settings
from workbench.types import Document, SourceKind

MANIFEST = "manifest.json"

#: Names of the corpora that ship with the workbench, in index-build order.
SHIPPED_CORPORA: tuple[str, ...] = ("scifact", "pubmedqa", "medquad")

# User folders registered in this process: name -> (path, source_kind).
_REGISTERED: dict[str, tuple[Path, SourceKind]] = {}


class CorpusIntegrityError(CorpusError):
    """A shipped corpus file is missing or differs from the manifest's checksum."""


def _dir(corpora_dir: str | Path | None) -> Path:
    return Path(corpora_dir) if corpora_dir is not None else Settings().corpora_dir


def load_manifest(corpora_dir: str | Path | None = None) -> dict[str, Any]:
    """Read ``manifest.json`` from the corpora folder (default: the repository's ``corpora/``)."""
    path = _dir(corpora_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CorpusError(
            f"{path}: corpus manifest not found. Set WB_CORPORA_DIR to the folder with manifest.json."
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: corpus manifest is not valid JSON ({exc}). Restore it from git.") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("corpora"), list):
        raise CorpusError(f'{path}: corpus manifest has no "corpora" list. Restore it from git.')
    return manifest


def known_corpora(corpora_dir: str | Path | None = None) -> list[str]:
    """Names of the shipped corpora in the manifest plus user folders registered in this process."""
    try:
        shipped = [c["name"] for c in load_manifest(corpora_dir)["corpora"]]
    except CorpusError:
        shipped = []
    return shipped + [n for n in _REGISTERED if n not in shipped]


def _unknown(name: str, corpora_dir: str | Path | None) -> UnknownCorpus:
    known = ", ".join(known_corpora(corpora_dir)) or "none"
    return UnknownCorpus(
        f"unknown corpus {name!r}; known corpora: {known}. Register a folder with register_corpus(name, path)."
    )


def corpus_info(name: str, corpora_dir: str | Path | None = None) -> dict[str, Any]:
    """The manifest entry of one shipped corpus (name, description, source, licence, files, documents)."""
    for entry in load_manifest(corpora_dir)["corpora"]:
        if entry.get("name") == name:
            return dict(entry)
    raise _unknown(name, corpora_dir)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_corpora(
    names: Iterable[str] | None = None, *, corpora_dir: str | Path | None = None
) -> list[Path]:
    """Check every listed file's size and sha256 against the manifest; return the files checked.

    Raises:
        CorpusIntegrityError: a file is missing or changed (the message lists every bad file).
        UnknownCorpus: a name is not in the manifest.
    """
    base = _dir(corpora_dir)
    entries = [corpus_info(n, base) for n in names] if names is not None else load_manifest(base)["corpora"]
    checked: list[Path] = []
    problems: list[str] = []
    for entry in entries:
        for f in entry.get("files", []):
            path = base / f["path"]
            if not path.is_file():
                problems.append(f"{path} is missing")
                continue
            size = path.stat().st_size
            digest = sha256_file(path)
            if size != f["bytes"] or digest != f["sha256"]:
                problems.append(
                    f"{path} (corpus {entry['name']}): expected {f['bytes']} bytes sha256 {f['sha256'][:12]}…, "
                    f"found {size} bytes sha256 {digest[:12]}…"
                )
                continue
            checked.append(path)
    if problems:
        raise CorpusIntegrityError(
            "shipped corpus files do not match corpora/manifest.json: "
            + "; ".join(problems)
            + ". Restore them with `git checkout -- corpora` or rebuild with corpora/build.py."
        )
    return checked


def iter_corpus(
    name: str, corpora_dir: str | Path | None = None, *, errors: ErrorSink = None, verify: bool = True
) -> Iterator[Document]:
    """Stream the Documents of a shipped or registered corpus.

    With ``verify`` (the default; it costs a few milliseconds) a shipped corpus's files are checked
    against the manifest first, so an index is never built from altered or partial files.
    """
    from workbench.corpus.readers import read_documents

    if name in _REGISTERED and name not in SHIPPED_CORPORA:
        path, kind = _REGISTERED[name]
        yield from iter_path_corpus(path, name, source_kind=kind, errors=errors)
        return
    entry = corpus_info(name, corpora_dir)
    base = _dir(corpora_dir)
    if verify:
        verify_corpora([name], corpora_dir=base)
    for f in entry.get("files", []):
        if f.get("role", "data") != "data":
            continue
        yield from read_documents(base / f["path"], corpus=name, format=entry.get("format"), errors=errors)


def iter_shipped(
    names: Iterable[str] | None = None,
    *,
    corpora_dir: str | Path | None = None,
    errors: ErrorSink = None,
    verify: bool = True,
) -> Iterator[Document]:
    """Stream the Documents of the shipped corpora (all of them by default), one corpus after another."""
    wanted = list(names) if names is not None else list(SHIPPED_CORPORA)
    manifest_names = {c.get("name") for c in load_manifest(corpora_dir)["corpora"]}
    for n in wanted:  # fail before reading anything when a name is wrong
        if n not in manifest_names:
            raise _unknown(n, corpora_dir)
    for n in wanted:
        yield from iter_corpus(n, corpora_dir, errors=errors, verify=verify)


def corpus_fingerprint(name: str, corpora_dir: str | Path | None = None) -> str:
    """A short version id of a shipped corpus: sha256 over its data files' manifest checksums.

    Record it with an index so a later run can tell whether the index was built from these files.
    """
    entry = corpus_info(name, corpora_dir)
    h = hashlib.sha256()
    for f in sorted(entry.get("files", []), key=lambda f: f["path"]):
        if f.get("role", "data") == "data":
            h.update(f"{f['path']}\0{f['sha256']}\n".encode())
    return h.hexdigest()[:16]


def register_corpus(name: str, path: str | Path, *, source_kind: SourceKind = "user_document") -> None:
    """Make a user's file or folder of documents available as corpus ``name`` in this process."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CorpusError(f"{p}: no such file or folder to register as corpus {name!r}")
    if name in SHIPPED_CORPORA:
        raise CorpusError(f"{name!r} is a shipped corpus; choose another name for {p}")
    _REGISTERED[name] = (p.resolve(), source_kind)


def unregister_corpus(name: str) -> None:
    """Forget a registered user corpus (shipped corpora cannot be removed)."""
    if _REGISTERED.pop(name, None) is None:
        raise _unknown(name, None)


def iter_path_corpus(
    path: str | Path,
    name: str,
    *,
    source_kind: SourceKind | None = None,
    errors: ErrorSink = None,
) -> Iterator[Document]:
    """Stream Documents from a user's file or folder (any supported format) as corpus ``name``.

    In a folder every supported file is read (sorted, recursively; hidden files skipped); a file
    that cannot be read is a record-level error (raised, or collected into ``errors``).
    """
    from workbench.corpus.readers import read_documents

    for doc in read_documents(path, corpus=name, errors=errors):
        if source_kind is not None:
            doc.source_kind = source_kind
        yield doc
