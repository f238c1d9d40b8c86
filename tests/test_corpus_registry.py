"""Shipped corpora manifest, checksum verification, corpus iteration and user corpora."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from workbench.corpus import (
    SHIPPED_CORPORA,
    CorpusIntegrityError,
    chunk_document,
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
from workbench.errors import CorpusError, UnknownCorpus
from workbench.settings import PROJECT_ROOT

FIX = Path(__file__).parent / "fixtures" / "corpus"
CORPORA = PROJECT_ROOT / "corpora"


def test_manifest_describes_every_shipped_corpus() -> None:
    manifest = load_manifest()
    entries = {c["name"]: c for c in manifest["corpora"]}
    assert tuple(entries) == SHIPPED_CORPORA
    assert {n: entries[n]["documents"] for n in entries} == {
        "scifact": 5183,
        "pubmedqa": 1000,
        "medquad": 1720,
    }
    for entry in entries.values():
        assert entry["licence"] and entry["citation"] and entry["description"]
        assert entry["source"]["repository"].startswith("github:") and len(entry["source"]["commit"]) == 40
        roles = {f["role"] for f in entry["files"]}
        assert roles == {"data", "licence"}
        for f in entry["files"]:
            assert (CORPORA / f["path"]).stat().st_size == f["bytes"]
    assert (
        (CORPORA / "medquad" / "LICENSE-CC-BY-4.0.txt")
        .read_text(encoding="utf-8")
        .startswith("Attribution 4.0")
    )


def test_shipped_files_verify() -> None:
    checked = verify_corpora()
    assert len(checked) == sum(len(c["files"]) for c in load_manifest()["corpora"])


def test_pubmedqa_corpus_ships_no_answer_labels() -> None:
    (data,) = [f for f in corpus_info("pubmedqa")["files"] if f["role"] == "data"]
    records = json.loads(gzip.decompress((CORPORA / data["path"]).read_bytes()))
    assert len(records) == 1000
    assert {k for r in records.values() for k in r} == {"QUESTION", "CONTEXTS", "LABELS", "MESHES", "YEAR"}


def test_iter_corpus_reads_shipped_pubmedqa() -> None:
    docs = list(iter_corpus("pubmedqa", verify=True))
    assert len(docs) == 1000 and len({d.doc_id for d in docs}) == 1000
    doc = docs[0]
    assert doc.corpus == "pubmedqa" and doc.metadata["pmid"] == doc.doc_id
    assert all(doc.text[s.start : s.end].strip() for s in doc.sections)
    chunks = chunk_document(doc)
    assert chunks and chunks[0].metadata["pmid"] == doc.doc_id and "question" not in chunks[0].metadata


def _copy_corpora(tmp_path: Path) -> Path:
    dest = tmp_path / "corpora"
    shutil.copytree(CORPORA, dest, ignore=shutil.ignore_patterns("build.py", "__pycache__", "embeddings"))
    return dest


def test_verify_catches_a_modified_file(tmp_path: Path) -> None:
    dest = _copy_corpora(tmp_path)
    target = dest / "scifact" / "NOTICE.md"
    target.write_bytes(target.read_bytes().replace(b"SciFact", b"SciFakt", 1))  # same size, other content
    with pytest.raises(CorpusIntegrityError, match=r"scifact/NOTICE\.md .*corpus scifact"):
        verify_corpora(corpora_dir=dest)
    verify_corpora(["pubmedqa"], corpora_dir=dest)  # the others still verify
    data = dest / "pubmedqa" / "pqal_contexts.json.gz"
    data.write_bytes(data.read_bytes()[:-10])  # truncated: iterating refuses before reading anything
    with pytest.raises(CorpusIntegrityError, match="pqal_contexts"):
        next(iter_shipped(["pubmedqa"], corpora_dir=dest))
    assert corpus_fingerprint("pubmedqa", dest) == corpus_fingerprint(
        "pubmedqa"
    )  # from the manifest, not the bytes
    (dest / "pubmedqa" / "NOTICE.md").unlink()
    with pytest.raises(CorpusIntegrityError, match="missing"):
        verify_corpora(["pubmedqa"], corpora_dir=dest)


def _tiny_corpora(tmp_path: Path) -> Path:
    """A corpora folder shaped like the shipped one, holding the small fixtures."""
    base = tmp_path / "tiny"
    base.mkdir()
    files = {
        "scifact": ("scifact_sample.jsonl", "beir"),
        "pubmedqa": ("pubmedqa_sample.json", "pubmedqa"),
        "medquad": ("medquad", "medquad"),
    }
    entries = []
    for name, (fname, fmt) in files.items():
        src = FIX / fname
        if src.is_dir():
            shutil.copytree(src, base / name)
            rels = sorted(p.relative_to(base).as_posix() for p in (base / name).rglob("*.xml"))
        else:
            (base / name).mkdir()
            shutil.copy(src, base / name / fname)
            rels = [f"{name}/{fname}"]
        entries.append(
            {
                "name": name,
                "format": fmt,
                "files": [
                    {
                        "path": r,
                        "role": "data",
                        "bytes": (base / r).stat().st_size,
                        "sha256": hashlib.sha256((base / r).read_bytes()).hexdigest(),
                    }
                    for r in rels
                ],
            }
        )
    (base / "manifest.json").write_text(
        json.dumps({"manifest_version": 1, "corpora": entries}), encoding="utf-8"
    )
    return base


def test_iter_shipped_streams_all_corpora_in_order(tmp_path: Path) -> None:
    base = _tiny_corpora(tmp_path)
    docs = list(iter_shipped(corpora_dir=base))
    corpora = [d.corpus for d in docs]
    assert corpora == sorted(corpora, key=SHIPPED_CORPORA.index)
    assert corpora.count("scifact") == 5 and corpora.count("pubmedqa") == 3 and corpora.count("medquad") >= 3
    assert [d.corpus for d in iter_shipped(["pubmedqa"], corpora_dir=base)] == ["pubmedqa"] * 3
    assert len(verify_corpora(corpora_dir=base)) >= 5
    assert len(corpus_fingerprint("scifact", base)) == 16
    assert corpus_fingerprint("scifact", base) != corpus_fingerprint("pubmedqa", base)


def test_unknown_corpus_lists_known_names(tmp_path: Path) -> None:
    base = _tiny_corpora(tmp_path)
    with pytest.raises(UnknownCorpus, match="known corpora: scifact, pubmedqa, medquad") as info:
        list(iter_shipped(["scifact", "pubmed-typo"], corpora_dir=base))
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownCorpus, match="pubmed-typo"):
        list(iter_corpus("pubmed-typo", base))
    with pytest.raises(UnknownCorpus):
        verify_corpora(["nope"], corpora_dir=base)


def test_missing_or_broken_manifest_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="manifest not found"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CorpusError, match="not valid JSON"):
        load_manifest(tmp_path)


def test_user_folder_as_a_corpus(tmp_path: Path) -> None:
    folder = tmp_path / "my_guidelines"
    folder.mkdir()
    (folder / "a.md").write_text("# Dosing\n\nTake one tablet daily.\n", encoding="utf-8")
    (folder / "notes.txt").write_text("Plain note about exercise.", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n")  # unsupported: skipped
    docs = list(iter_path_corpus(folder, "mine"))
    assert [(d.doc_id, d.corpus, d.source_kind) for d in docs] == [
        ("mine:a.md", "mine", "user_document"),
        ("mine:notes.txt", "mine", "user_document"),
    ]
    register_corpus("mine", folder)
    try:
        assert "mine" in known_corpora()
        assert [d.doc_id for d in iter_corpus("mine")] == ["mine:a.md", "mine:notes.txt"]
    finally:
        unregister_corpus("mine")
    assert "mine" not in known_corpora()
    with pytest.raises(CorpusError):
        register_corpus("scifact", folder)
    with pytest.raises(CorpusError):
        register_corpus("x", tmp_path / "missing")
