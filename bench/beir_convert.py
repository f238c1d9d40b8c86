"""Convert openly licensed local QA data into BEIR folders for ``bench/retrieval.py``.

    python bench/beir_convert.py pubmedqa ../shared/data/pubmedqa/ori_pqal.json /tmp/beir/pubmedqa
    python bench/beir_convert.py medquad ../shared/data/guidelines/medquad /tmp/beir/medquad
    python bench/retrieval.py --beir-dir /tmp/beir/pubmedqa --json bench/results/retrieval_pubmedqa.json

Each writes ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv`` (header, score 1 = relevant)
plus ``stats.json`` into the output folder, replacing what was there.

- **pubmedqa** (PQA-L ``ori_pqal.json``, MIT): one document per PMID, title empty, text = its
  CONTEXTS joined by blank lines (the answer fields are never copied); one query per PMID, its
  QUESTION, relevant = its own PMID. The question is a rephrased title, so it is not in the corpus.
- **medquad** (MedQuAD XML folder, CC BY 4.0): one document per answered question/answer pair,
  id = ``<source>-<file stem>-<pid>`` (the product's MedQuAD document id plus the pair id), title =
  the page focus, text = the answer; one query per distinct question text. A question text that
  recurs verbatim (e.g. "What is (are) Stroke ?" on several sites) becomes one query with all of
  its answers relevant, and an answer whose exact text recurs under another id makes that id
  relevant too (the copies are indistinguishable). ``--max-queries N`` keeps a deterministic
  subsample: the N query ids with the smallest SHA-256, the corpus stays whole; with
  ``--complement`` the other queries instead (a set disjoint from the subsample, same corpus).

A harder variant of either: ``--distractors OTHER/corpus.jsonl`` adds every document of another
BEIR corpus, ids prefixed ``x-`` and never relevant, e.g. the 5,183 SciFact abstracts beside the
1,000 PubMedQA contexts (same domain, six times the haystack):

    python bench/beir_convert.py pubmedqa ../shared/data/pubmedqa/ori_pqal.json /tmp/beir/pubmedqa_x \
        --distractors ../shared/data/scifact/corpus.jsonl

Both read through the product's own readers (``workbench.corpus``), so text cleaning is the same
as in a real index. Nothing is tuned here: the converter only reshapes the sources.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as DET

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.corpus import parse_medquad, read_beir_jsonl, read_pubmedqa  # noqa: E402

_PAIR_TAGS = ("QAPair", "pair")
_QUESTION_TAGS = ("Question", "question")
_ANSWER_TAGS = ("Answer", "answer")


def _atomic_write(path: Path, lines: Iterable[str]) -> None:
    """Write ``lines`` to ``path`` through a temporary file so a failed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for line in lines:
                fh.write(line)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_beir(
    out: Path,
    corpus: list[dict[str, Any]],
    queries: dict[str, str],
    qrels: dict[str, list[str]],
    stats: dict[str, Any],
) -> dict[str, Any]:
    """Write one BEIR folder (corpus, queries, qrels/test.tsv, stats.json) and return the stats."""
    ids = [d["_id"] for d in corpus]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate document ids in the converted corpus for {out}")
    known = set(ids)
    for q, docs in qrels.items():
        missing = [d for d in docs if d not in known]
        if missing:
            raise ValueError(f"query {q} points at documents not in the corpus: {missing[:3]}")
    _atomic_write(out / "corpus.jsonl", (json.dumps(d, ensure_ascii=False) + "\n" for d in corpus))
    _atomic_write(
        out / "queries.jsonl",
        (json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n" for q, t in queries.items()),
    )
    rows = ["query-id\tcorpus-id\tscore\n"]
    rows += [f"{q}\t{d}\t1\n" for q, docs in qrels.items() for d in docs]
    _atomic_write(out / "qrels" / "test.tsv", rows)
    stats = {
        **stats,
        "documents": len(corpus),
        "queries": len(queries),
        "qrels": sum(len(v) for v in qrels.values()),
    }
    _atomic_write(out / "stats.json", [json.dumps(stats, indent=2) + "\n"])
    return stats


def distractor_docs(path: Path) -> list[dict[str, Any]]:
    """Documents of another BEIR corpus to add as never-relevant distractors (ids prefixed ``x-``)."""
    return [{"_id": f"x-{d.doc_id}", "title": d.title, "text": d.text} for d in read_beir_jsonl(path)]


def convert_pubmedqa(src: Path, out: Path, distractors: Path | None = None) -> dict[str, Any]:
    """PubMedQA PQA-L -> BEIR: contexts are the corpus, each question's relevant document is its PMID."""
    corpus: list[dict[str, Any]] = []
    queries: dict[str, str] = {}
    qrels: dict[str, list[str]] = {}
    for doc in read_pubmedqa(src):
        question = " ".join(str(doc.metadata.get("question") or "").split())
        if not doc.text.strip():
            continue  # no context: nothing to retrieve
        corpus.append({"_id": doc.doc_id, "title": "", "text": doc.text})
        if question:
            queries[doc.doc_id] = question
            qrels[doc.doc_id] = [doc.doc_id]
    stats: dict[str, Any] = {"source": str(src), "kind": "pubmedqa"}
    if distractors is not None:
        extra = distractor_docs(distractors)
        corpus += extra
        stats["distractors"] = {"source": str(distractors), "documents": len(extra)}
    return write_beir(out, corpus, queries, qrels, stats)


def _answered_pids(xml_path: Path) -> list[str]:
    """Pair ids of the answered pairs of one MedQuAD file, in the order the product reader keeps them."""
    root = DET.parse(str(xml_path), forbid_dtd=True).getroot()
    pids: list[str] = []
    for pair in root.iter():
        if pair.tag not in _PAIR_TAGS:
            continue
        q = next((c for t in _QUESTION_TAGS if (c := pair.find(t)) is not None), None)
        a = next((c for t in _ANSWER_TAGS if (c := pair.find(t)) is not None), None)
        if q is None or a is None or not "".join(a.itertext()).strip():
            continue  # the reader skips these too (answers withdrawn for copyright)
        pids.append(pair.get("pid") or "")
    return pids


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def convert_medquad(
    src: Path,
    out: Path,
    max_queries: int = 0,
    distractors: Path | None = None,
    complement: bool = False,
) -> dict[str, Any]:
    """MedQuAD -> BEIR: each answer a document, each distinct question text a query."""
    corpus: list[dict[str, Any]] = []
    by_question: dict[str, list[str]] = {}
    by_answer: dict[str, list[str]] = {}
    positional = 0
    files = sorted(f for f in src.rglob("*.xml") if f.is_file()) if src.is_dir() else [src]
    for f in files:
        # one file at a time (as the product reader does) so each answer keeps its file's pair ids
        doc = parse_medquad(f.read_bytes(), source_name=str(f))
        if not doc.sections:
            continue
        pids = _answered_pids(f)
        if len(pids) != len(doc.sections) or len(set(pids)) != len(pids) or "" in pids:
            pids = [str(i) for i in range(1, len(doc.sections) + 1)]  # fall back to positions
            positional += 1
        for pid, sec in zip(pids, doc.sections, strict=True):
            answer = doc.text[sec.start : sec.end]
            did = f"{doc.doc_id}-{pid}"
            corpus.append({"_id": did, "title": doc.title, "text": answer})
            by_question.setdefault(" ".join(sec.name.split()), []).append(did)
            by_answer.setdefault(answer, []).append(did)
    same_text = {d: ids for ids in by_answer.values() if len(ids) > 1 for d in ids}
    queries: dict[str, str] = {}
    qrels: dict[str, list[str]] = {}
    for question, dids in by_question.items():
        if not question:
            continue
        qid = f"q-{dids[0]}"
        rel: list[str] = []
        for d in dids:
            for r in same_text.get(d, [d]):
                if r not in rel:
                    rel.append(r)
        queries[qid] = question
        qrels[qid] = rel
    stats: dict[str, Any] = {
        "source": str(src),
        "kind": "medquad",
        "question_texts_shared_by_several_answers": sum(1 for v in by_question.values() if len(v) > 1),
        "answers_with_verbatim_copies": len(same_text),
        "files_with_positional_pair_ids": positional,
    }
    if max_queries and len(queries) > max_queries:
        ranked = sorted(queries, key=_sha)
        keep_set = set(ranked[max_queries:] if complement else ranked[:max_queries])
        queries = {q: t for q, t in queries.items() if q in keep_set}
        qrels = {q: r for q, r in qrels.items() if q in keep_set}
        stats["subsample"] = (
            f"all but the {max_queries} query ids with the smallest SHA-256"
            if complement
            else f"{max_queries} query ids with the smallest SHA-256"
        )
    if distractors is not None:
        extra = distractor_docs(distractors)
        corpus += extra
        stats["distractors"] = {"source": str(distractors), "documents": len(extra)}
    return write_beir(out, corpus, queries, qrels, stats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("kind", choices=["pubmedqa", "medquad"], help="source format")
    p.add_argument("source", help="ori_pqal.json (pubmedqa) or the MedQuAD folder / XML file (medquad)")
    p.add_argument("out", help="output BEIR folder (created; its files are replaced)")
    p.add_argument(
        "--max-queries",
        type=int,
        default=0,
        help="medquad: keep N queries, those whose ids have the smallest SHA-256 (default: all)",
    )
    p.add_argument(
        "--complement",
        action="store_true",
        help="medquad with --max-queries: keep the queries the subsample leaves out instead",
    )
    p.add_argument(
        "--distractors",
        default="",
        help="a BEIR corpus.jsonl whose documents are added, ids prefixed x-, as never-relevant distractors",
    )
    args = p.parse_args(argv)
    src, out = Path(args.source), Path(args.out)
    if not src.exists():
        print(f"{src} does not exist; pass the PubMedQA ori_pqal.json or the MedQuAD folder", file=sys.stderr)
        return 2
    extra = Path(args.distractors) if args.distractors else None
    if extra is not None and not extra.is_file():
        print(f"{extra} is not a file; pass a BEIR corpus.jsonl to --distractors", file=sys.stderr)
        return 2
    if args.kind == "pubmedqa":
        stats = convert_pubmedqa(src, out, extra)
    else:
        stats = convert_medquad(src, out, args.max_queries, extra, args.complement)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
