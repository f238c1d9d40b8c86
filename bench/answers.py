"""Benchmark of cited answers on PubMedQA (PQA-L).

    python bench/answers.py --pubmedqa ../shared/data/pubmedqa/ori_pqal.json [--index DIR] [--json OUT]

Reports, on the 500 official test PMIDs only (``test_ground_truth.json`` beside the data file):

* evidence recall@k of the gold context: share of questions whose own PMID (the gold
  context, chunked) is among the top-k retrieved documents; MRR too;
* for the offline extractive answerer: citation precision = share of citations that point at
  the gold context or at a passage supporting the gold long answer (some long-answer sentence
  reaches the support threshold against it), plus the gold-only share;
* ALCE-style citation recall and precision with the documented support score
  (``workbench.answer.citations``) standing in for NLI;
* with a configured model (WB_LLM_MODEL / OPENAI_MODEL), yes/no/maybe accuracy.

Index: ``--index DIR`` if given; else the default index (settings.index_dir) when it holds the
``pubmedqa`` corpus (it is shipped together with SciFact and MedQuAD); else an index of the
PubMedQA contexts alone, built once into ``--cache-dir``. The report says which was used.
Nothing here is tuned on the test PMIDs; ``--split dev`` runs the other 500 for development.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workbench.answer import SUPPORT_THRESHOLD, SupportScorer, alce_scores, ask  # noqa: E402
from workbench.answer.pipeline import default_encoder, items_from_hits, rank_relevance, run_pipeline  # noqa: E402
from workbench.answer.text import split_sentences  # noqa: E402
from workbench.errors import IndexMissing  # noqa: E402
from workbench.settings import get_settings  # noqa: E402

KS = (1, 3, 5, 10)


def load_index(args: argparse.Namespace) -> tuple[Any, str]:
    """The index to search and a description of what it holds."""
    from workbench.corpus.pubmedqa import read_pubmedqa
    from workbench.retrieval import EvidenceIndex

    if args.index:
        index = EvidenceIndex.load(args.index)
        return index, f"{args.index} ({', '.join(sorted(index.manifest.get('corpora', {})))})"
    try:
        index = EvidenceIndex.load(None)
        corpora = sorted(index.manifest.get("corpora", {}))
        if "pubmedqa" in corpora:
            return index, f"default index ({', '.join(corpora)})"
    except IndexMissing:
        pass
    folder = Path(args.cache_dir) / "pubmedqa-only"
    try:
        return EvidenceIndex.load(folder), f"PubMedQA contexts only (cached at {_tilde(folder)})"
    except IndexMissing:
        pass
    print(f"building a PubMedQA-only index in {folder} (one-off; slow on a small CPU)", file=sys.stderr)
    settings = get_settings()
    index = EvidenceIndex.build(
        read_pubmedqa(args.pubmedqa),
        folder,
        max_tokens=settings.chunk_tokens,
        overlap=settings.chunk_overlap,
        progress=True,
    )
    return index, f"PubMedQA contexts only (built at {_tilde(folder)})"


def _tilde(path: Path) -> str:
    """``path`` with the home folder written as ``~`` (reports should not carry account names)."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


class FixedHits:
    """Serves the hits already retrieved for a question, so the answerer does not search twice."""

    def __init__(self, hits: list[Any]) -> None:
        self.hits = hits

    def search(self, query: str, *, k: int = 10, **_: Any) -> list[Any]:
        return self.hits[:k]


def pmid_of(doc_id: str, corpus: str) -> str | None:
    return doc_id if corpus == "pubmedqa" else None


def parse_decision(text: str) -> str | None:
    first = text.strip().lower().lstrip("*#> ").split()[:1]
    word = first[0].strip(".,:;!") if first else ""
    return word if word in ("yes", "no", "maybe") else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(Path(args.pubmedqa).read_text(encoding="utf-8"))
    gt_path = Path(args.ground_truth or Path(args.pubmedqa).with_name("test_ground_truth.json"))
    test_ids = set(json.loads(gt_path.read_text(encoding="utf-8")))
    ids = sorted(test_ids) if args.split == "test" else sorted(set(data) - test_ids)
    if args.limit:
        ids = ids[: args.limit]
    index, index_desc = load_index(args)
    encoder = default_encoder()
    scorer = SupportScorer(encoder)
    settings = get_settings()
    offline_settings = get_settings(WB_LLM_MODEL="")
    use_llm = bool(settings.llm_model) and not args.offline_only

    ranks: list[int | None] = []
    n_cit = gold_cit = precise_cit = 0
    answers_citing_gold = 0
    alce_sent = alce_supported = alce_cites = alce_precise = 0.0
    sentences_per_answer: list[int] = []
    llm_correct = llm_total = 0
    llm_alce: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for i, pmid in enumerate(ids, start=1):
        rec = data[pmid]
        q = rec["QUESTION"]
        hits = index.search(q, k=max(KS))
        doc_rank = next((r for r, h in enumerate(hits, start=1) if pmid_of(h.doc_id, h.corpus) == pmid), None)
        ranks.append(doc_rank)
        answer = ask(
            q,
            index=FixedHits(hits),
            k=args.answer_k,
            settings=offline_settings,
            encoder=encoder,
            offline=True,
        )
        items = {it.number: it for it in answer.context}
        long_sents = split_sentences(rec["LONG_ANSWER"])
        cites_gold = False
        for s in answer.sentences:
            for n in s.citations:
                it = items[n]
                n_cit += 1
                is_gold = pmid_of(it.doc_id, it.corpus) == pmid
                gold_cit += is_gold
                cites_gold |= is_gold
                # Only a citation outside the gold context needs the long-answer support check.
                precise_cit += is_gold or any(
                    scorer.support(ls, it.text) >= SUPPORT_THRESHOLD for ls in long_sents
                )
        answers_citing_gold += cites_gold
        sentences_per_answer.append(len(answer.sentences))
        a = alce_scores(
            [(s.text, s.citations) for s in answer.sentences], {n: it.text for n, it in items.items()}, scorer
        )
        alce_sent += a["sentences"]
        alce_supported += a["citation_recall"] * a["sentences"]
        alce_cites += a["citations"]
        alce_precise += a["citation_precision"] * a["citations"]
        if use_llm:
            ctx = items_from_hits(hits[: args.answer_k])
            rank_relevance(ctx, q, encoder)
            llm_answer = run_pipeline(
                task="ask",
                question=q,
                items=ctx,
                settings=settings,
                encoder=encoder,
                instructions=(
                    "Answer the research question. Start with exactly one word, Yes, No or Maybe, "
                    "followed by a full stop, then give two or three cited sentences of justification."
                ),
                offline=False,
                stream=False,
            )
            llm_total += 1
            llm_correct += parse_decision(llm_answer.text) == rec["final_decision"]
            llm_alce.append(
                alce_scores(
                    [(s.text, s.citations) for s in llm_answer.sentences],
                    {it.number: it.text for it in llm_answer.context},
                    scorer,
                )
            )
        if i % 50 == 0:
            print(f"{i}/{len(ids)} questions, {time.perf_counter() - t0:.0f}s", file=sys.stderr)

    n = len(ids)
    found = [r for r in ranks if r is not None]
    result: dict[str, Any] = {
        "benchmark": "pubmedqa-pqal",
        "split": args.split,
        "questions": n,
        "index": index_desc,
        "index_chunks": len(index),
        "retrieval": {
            **{f"gold_recall@{k}": sum(1 for r in found if r <= k) / n for k in KS},
            "mrr@10": sum(1.0 / r for r in found) / n,
            "mode": "hybrid",
        },
        "offline_answerer": {
            "model": "offline-extractive",
            "answer_k": args.answer_k,
            "citations": n_cit,
            "citation_precision": precise_cit / n_cit if n_cit else 0.0,
            "citation_precision_gold_only": gold_cit / n_cit if n_cit else 0.0,
            "answers_citing_gold": answers_citing_gold / n,
            "mean_sentences": statistics.mean(sentences_per_answer) if sentences_per_answer else 0.0,
            "alce_citation_recall": alce_supported / alce_sent if alce_sent else 0.0,
            "alce_citation_precision": alce_precise / alce_cites if alce_cites else 0.0,
        },
        "support_method": (
            f"support(s, c) = 0.5*max(cos_MiniLM(s, c or any sentence of c), 0) + 0.5*content-word recall; "
            f"supported when >= {SUPPORT_THRESHOLD}"
        ),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if use_llm:
        result["llm"] = {
            "model": settings.llm_model,
            "accuracy": llm_correct / llm_total if llm_total else 0.0,
            "alce_citation_recall": statistics.mean(a["citation_recall"] for a in llm_alce),
            "alce_citation_precision": statistics.mean(a["citation_precision"] for a in llm_alce),
        }
    else:
        result["llm"] = None
    return result


def markdown(r: dict[str, Any]) -> str:
    ret, off = r["retrieval"], r["offline_answerer"]
    lines = [
        "# Cited answers on PubMedQA (PQA-L)",
        "",
        f"Split: **{r['split']}** ({r['questions']} questions). Index: {r['index']}, {r['index_chunks']} chunks.",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| gold-context recall@{k} | {ret[f'gold_recall@{k}']:.3f} |" for k in KS],
        f"| MRR@10 | {ret['mrr@10']:.3f} |",
        f"| offline citation precision (gold or supports long answer) | {off['citation_precision']:.3f} |",
        f"| offline citation precision (gold context only) | {off['citation_precision_gold_only']:.3f} |",
        f"| offline answers citing the gold context | {off['answers_citing_gold']:.3f} |",
        f"| offline ALCE citation recall | {off['alce_citation_recall']:.3f} |",
        f"| offline ALCE citation precision | {off['alce_citation_precision']:.3f} |",
        f"| offline sentences per answer | {off['mean_sentences']:.2f} |",
    ]
    if r.get("llm"):
        llm = r["llm"]
        lines += [
            f"| {llm['model']} yes/no/maybe accuracy | {llm['accuracy']:.3f} |",
            f"| {llm['model']} ALCE citation recall | {llm['alce_citation_recall']:.3f} |",
            f"| {llm['model']} ALCE citation precision | {llm['alce_citation_precision']:.3f} |",
        ]
    else:
        lines += ["", "No model was configured, so yes/no/maybe accuracy was not measured."]
    if "only" in r["index"]:
        lines += [
            "",
            "The index held the PubMedQA contexts alone: the shipped index (PubMedQA with SciFact and "
            "MedQuAD) had not been built on this machine. Rerun with `--index index` after `make index`.",
        ]
    lines += [
        "",
        "The offline answerer quotes sentences verbatim, so its ALCE scores are 1.0 by construction; "
        "the PubMedQA-specific citation precision above is the informative number for it.",
        "",
        f"Support method: {r['support_method']}.",
        f"Run time: {r['seconds']} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pubmedqa", required=True, help="ori_pqal.json of PubMedQA")
    p.add_argument("--ground-truth", default=None, help="test_ground_truth.json (default: beside --pubmedqa)")
    p.add_argument("--index", default=None, help="index folder holding the pubmedqa corpus")
    p.add_argument(
        "--cache-dir",
        default=os.environ.get(
            "WB_BENCH_CACHE", str(Path.home() / ".cache" / "health-evidence-workbench" / "bench")
        ),
        help="where a PubMedQA-only index is built and kept",
    )
    p.add_argument("--split", choices=("test", "dev"), default="test")
    p.add_argument("--limit", type=int, default=0, help="only the first N questions (development)")
    p.add_argument("--answer-k", type=int, default=8, help="passages retrieved for each answer")
    p.add_argument("--offline-only", action="store_true", help="skip the model even if one is configured")
    p.add_argument("--json", default=str(REPO / "bench" / "results" / "answers.json"))
    p.add_argument("--markdown", default=None, help="default: the --json path with .md")
    args = p.parse_args(argv)
    result = run(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = markdown(result)
    Path(args.markdown or out.with_suffix(".md")).write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
