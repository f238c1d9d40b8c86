"""Rebuild the shipped corpora and ``manifest.json`` from the development data folder.

    .venv/bin/python corpora/build.py --data ../shared/data

Outputs are byte-reproducible (gzip and tar headers carry no timestamps or owners), so a
rebuild from the same sources gives the same sha256 values as the committed manifest.
This is a maintainer tool; the workbench never reads ``--data`` at run time.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from workbench.corpus.pubmedqa import LABEL_FIELDS  # noqa: E402
from workbench.corpus.registry import SHIPPED_CORPORA, iter_corpus  # noqa: E402

MEDQUAD_SUBSETS = (
    "1_CancerGov_QA",
    "4_MPlus_Health_Topics_QA",
    "5_NIDDK_QA",
    "6_NINDS_QA",
    "7_SeniorHealth_QA",
    "8_NHLBI_QA_XML",
    "9_CDC_QA",
)

# What each corpus is and where it came from (facts from the data folder's PROVENANCE.md files).
CORPORA: dict[str, dict[str, Any]] = {
    "scifact": {
        "description": "SciFact (BEIR packaging): 5,183 biomedical research abstracts from S2ORC, the "
        "retrieval corpus of the SciFact claim-verification benchmark. Corpus only; no claims or qrels.",
        "format": "beir",
        "source_kind": "abstract",
        "source": {
            "repository": "github:sumithra-p-v/claimverifier",
            "commit": "b42f1c3444b28884ddcfadffafbfe223646c6c37",
            "path": "data/scifact.zip (corpus_train.csv), converted with BEIR's rules",
            "original_sha256": "dec31c8182f3d744c7d2c09423756fd1d17cbef75808db13ba01cc0aab4d1ac6",
            "note": "The uncompressed corpus.jsonl is byte-identical to BEIR scifact/corpus.jsonl "
            "(sha256 matches the Git LFS pointer in github:moorateeahtashil/Information-Retrieval "
            "@ 6e67f048ea403472620fbff4658e1641b8cfc82d).",
        },
        "licence": "Abstracts: ODC-By 1.0 (S2ORC). SciFact annotations (not shipped here): CC BY 4.0.",
        "citation": "Wadden et al., 'Fact or Fiction: Verifying Scientific Claims', EMNLP 2020; "
        "Thakur et al., 'BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information "
        "Retrieval Models', NeurIPS 2021 Datasets and Benchmarks.",
    },
    "pubmedqa": {
        "description": "PubMedQA labelled set (PQA-L): the abstract contexts of its 1,000 PubMed articles, "
        "with section labels, MeSH terms, year and question. Answer labels are not shipped.",
        "format": "pubmedqa",
        "source_kind": "abstract",
        "source": {
            "repository": "github:pubmedqa/pubmedqa",
            "commit": "1cbae8e92f72f20c8d3747cbb3bf5bc53554d997",
            "path": "data/ori_pqal.json",
            "original_sha256": "8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d",
            "note": "Re-serialised keeping QUESTION, CONTEXTS, LABELS, MESHES and YEAR per PMID; "
            "final_decision, LONG_ANSWER and the reasoning_* predictions were removed.",
        },
        "licence": "MIT License, Copyright (c) 2019 pubmedqa. Contexts are excerpts of PubMed abstracts.",
        "citation": "Jin et al., 'PubMedQA: A Dataset for Biomedical Research Question Answering', EMNLP 2019.",
    },
    "medquad": {
        "description": "MedQuAD health-information pages from US government sites (cancer.gov, "
        "MedlinePlus, NIDDK, NINDS, NIHSeniorHealth, NHLBI, CDC): 1,726 XML files, one per page, "
        "each a set of question/answer pairs. Patient-oriented guidance, not clinical practice guidelines.",
        "format": "medquad",
        "source_kind": "guideline",
        "source": {
            "repository": "github:abachaa/MedQuAD",
            "commit": "577bd37b96c02d1833b2c9eed2de9f96964e96cb",
            "path": ", ".join(f"{s}/" for s in MEDQUAD_SUBSETS),
            "note": "Files are byte-identical to the repository blobs, stored in one tar.gz. "
            "6 NIDDK files have no answers and yield no document.",
        },
        "licence": "CC BY 4.0 (MedQuAD); underlying texts from US government health sites.",
        "citation": "Ben Abacha and Demner-Fushman, 'A Question-Entailment Approach to Question "
        "Answering', BMC Bioinformatics 2019.",
    },
}


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def _file_entry(out: Path, rel: str, role: str = "data") -> dict[str, Any]:
    data = (out / rel).read_bytes()
    return {"path": rel, "role": role, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build_scifact(data_dir: Path, out: Path) -> list[dict[str, Any]]:
    """corpus.jsonl, verified against its recorded sha256, gzip-compressed."""
    raw = (data_dir / "scifact" / "corpus.jsonl").read_bytes()
    expected = CORPORA["scifact"]["source"]["original_sha256"]
    if hashlib.sha256(raw).hexdigest() != expected:
        raise SystemExit("scifact/corpus.jsonl does not match its recorded sha256")
    (out / "scifact").mkdir(parents=True, exist_ok=True)
    (out / "scifact" / "corpus.jsonl.gz").write_bytes(_gzip_bytes(raw))
    CORPORA["scifact"]["source_records"] = raw.count(b"\n")
    return [_file_entry(out, "scifact/corpus.jsonl.gz"), _file_entry(out, "scifact/NOTICE.md", "licence")]


def build_pubmedqa(data_dir: Path, out: Path) -> list[dict[str, Any]]:
    """ori_pqal.json without its answer fields, compact JSON, gzip-compressed."""
    src = json.loads((data_dir / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    keep = ("QUESTION", "CONTEXTS", "LABELS", "MESHES", "YEAR")
    slim = {pmid: {k: rec[k] for k in keep if k in rec} for pmid, rec in src.items()}
    CORPORA["pubmedqa"]["source_records"] = len(slim)
    assert not any(f in r for r in slim.values() for f in LABEL_FIELDS)
    text = json.dumps(slim, ensure_ascii=False, indent=None, separators=(",", ":"))
    (out / "pubmedqa").mkdir(parents=True, exist_ok=True)
    (out / "pubmedqa" / "pqal_contexts.json.gz").write_bytes(_gzip_bytes(text.encode("utf-8")))
    return [
        _file_entry(out, "pubmedqa/pqal_contexts.json.gz"),
        _file_entry(out, "pubmedqa/NOTICE.md", "licence"),
    ]


def build_medquad(data_dir: Path, out: Path) -> list[dict[str, Any]]:
    """The seven subsets' XML files, unchanged, in one reproducible tar.gz."""
    root = data_dir / "guidelines" / "medquad"
    buf = io.BytesIO()
    n_files = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for subset in MEDQUAD_SUBSETS:
            for f in sorted((root / subset).glob("*.xml")):
                data = f.read_bytes()
                info = tarfile.TarInfo(f"{subset}/{f.name}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
                n_files += 1
    CORPORA["medquad"]["source_records"] = n_files
    (out / "medquad").mkdir(parents=True, exist_ok=True)
    (out / "medquad" / "medquad.tar.gz").write_bytes(_gzip_bytes(buf.getvalue()))
    lic = (data_dir / "guidelines" / "LICENSE-CC-BY-4.0.txt").read_bytes()
    (out / "medquad" / "LICENSE-CC-BY-4.0.txt").write_bytes(lic)
    return [
        _file_entry(out, "medquad/medquad.tar.gz"),
        _file_entry(out, "medquad/NOTICE.md", "licence"),
        _file_entry(out, "medquad/LICENSE-CC-BY-4.0.txt", "licence"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="development data folder (../shared/data)")
    ap.add_argument("--out", type=Path, default=HERE, help="corpora folder to write (default: this folder)")
    args = ap.parse_args(argv)
    out: Path = args.out
    builders = {"scifact": build_scifact, "pubmedqa": build_pubmedqa, "medquad": build_medquad}
    entries = []
    for name in SHIPPED_CORPORA:
        files = builders[name](args.data, out)
        entries.append({"name": name, **CORPORA[name], "files": files, "documents": None})
        # source_records: records in the source (lines, PMIDs, XML files); documents: what the readers yield.
    manifest = {"manifest_version": 1, "corpora": entries}
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    # Count documents with the product's own readers, so the manifest states what the workbench will see.
    for entry in entries:
        errors: list[Any] = []
        ids = [d.doc_id for d in iter_corpus(entry["name"], out, errors=errors)]
        if errors or len(ids) != len(set(ids)):
            raise SystemExit(
                f"{entry['name']}: {len(errors)} read errors, {len(ids) - len(set(ids))} duplicate ids"
            )
        entry["documents"] = len(ids)
        print(f"{entry['name']}: {len(ids)} documents")
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
