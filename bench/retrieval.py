"""Retrieval benchmark on any BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/test.tsv).

    python bench/retrieval.py --beir-dir ../shared/data/scifact --json bench/results/retrieval.json

Builds a fresh evidence index of the corpus with the workbench's own code (same chunking,
model and index as the product), then runs every test query one at a time, end to end
(query embedding included), through each method: BM25 alone, dense alone, and hybrid.
Prints a table and writes JSON (shape below) plus a Markdown table beside it:

    {"methods": {"bm25": M, "dense": M, "hybrid": M},
     "build": {"seconds": s, "docs_per_s": r}, "peak_rss_mb": m}

with M = {"ndcg_at_10", "recall_at_100", "mrr_at_10", "p50_ms", "p95_ms"}. Relevance grades
come from the qrels' score column (graded nDCG); a document counts as relevant when its
grade is above 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHODS = ("bm25", "dense", "hybrid")


def load_queries(path: Path) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[str(row["_id"])] = row["text"]
    return out


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            if len(parts) < 3:
                continue
            q, d, s = parts[0], parts[1], int(parts[2])
            qrels.setdefault(q, {})[d] = s
    return qrels


def ndcg_at(ranked: list[str], rel: dict[str, int], k: int = 10) -> float:
    dcg = sum(
        (2 ** rel.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if rel.get(d, 0) > 0
    )
    ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rel: dict[str, int], k: int = 100) -> float:
    relevant = {d for d, g in rel.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: list[str], rel: dict[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if rel.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def run(args: argparse.Namespace) -> dict:
    from workbench.corpus import read_beir_jsonl
    from workbench.retrieval import EmbeddingCache, EvidenceIndex, load_embedder
    from workbench.retrieval.hybrid import DEFAULT_FUSION
    from workbench.settings import get_settings

    beir = Path(args.beir_dir)
    queries = load_queries(beir / "queries.jsonl")
    qrels = load_qrels(beir / "qrels" / f"{args.split}.tsv")
    qrels = {q: r for q, r in qrels.items() if q in queries and any(g > 0 for g in r.values())}
    if args.max_queries:
        qrels = dict(list(qrels.items())[: args.max_queries])
    embedder = load_embedder(args.model or None)

    tmp = tempfile.TemporaryDirectory(prefix="wb-bench-")
    folder = Path(args.index_dir) if args.index_dir else Path(tmp.name) / "index"
    cache = None
    if args.cache_dir:
        cache = EmbeddingCache.load(Path(args.cache_dir), embedder.fingerprint)
    docs = list(
        read_beir_jsonl(beir / "corpus.jsonl", corpus=beir.name or "beir", source_kind=args.source_kind)
    )
    t0 = time.perf_counter()
    index = EvidenceIndex.build(
        docs,
        folder,
        embedder=embedder,
        dense_kind=args.dense_index,
        fusion=get_settings().fusion,  # honour WB_FUSION
        cache=cache,
        cache_checkpoint=Path(args.cache_dir) if args.cache_dir else None,
        progress=args.progress,
    )
    build_s = time.perf_counter() - t0
    if cache is not None:
        cache.save(Path(args.cache_dir))

    results: dict[str, dict] = {}
    for method in METHODS:
        index.search("warm up the query path", k=10, mode=method)  # type: ignore[arg-type]
        lat, nd, rc, mr = [], [], [], []
        for q, rel in qrels.items():
            t = time.perf_counter()
            hits = index.search(queries[q], k=args.depth, mode=method)  # type: ignore[arg-type]
            lat.append((time.perf_counter() - t) * 1000)
            ranked = [h.doc_id for h in hits]
            nd.append(ndcg_at(ranked, rel))
            rc.append(recall_at(ranked, rel))
            mr.append(mrr_at(ranked, rel))
        results[method] = {
            "ndcg_at_10": round(statistics.fmean(nd), 4),
            "recall_at_100": round(statistics.fmean(rc), 4),
            "mrr_at_10": round(statistics.fmean(mr), 4),
            "p50_ms": round(percentile(lat, 0.5), 2),
            "p95_ms": round(percentile(lat, 0.95), 2),
        }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out = {
        "dataset": str(beir),
        "split": args.split,
        "queries": len(qrels),
        "documents": len(docs),
        "chunks": index.manifest["counts"]["chunks"],
        "methods": results,
        "build": {
            "seconds": round(build_s, 2),
            "docs_per_s": round(len(docs) / build_s, 2) if build_s else None,
            "embedding_cache": None if cache is None else {"hits": cache.hits, "misses": cache.misses},
        },
        "peak_rss_mb": round(peak, 1),
        "settings": {
            "model": embedder.name,
            "model_fingerprint": embedder.fingerprint,
            "dense_index": args.dense_index,
            "source_kind": args.source_kind,
            "sentences": index.manifest["counts"].get("sentences", 0),
            "fusion": index.manifest.get("fusion", DEFAULT_FUSION),
            "chunking": index.manifest["chunking"],
            "depth": args.depth,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    tmp.cleanup()
    return out


def markdown(out: dict) -> str:
    lines = [
        f"# Retrieval benchmark: {Path(out['dataset']).name} ({out['split']}, {out['queries']} queries, "
        f"{out['documents']} documents, {out['chunks']} chunks)",
        "",
        "| method | nDCG@10 | recall@100 | MRR@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in out["methods"].items():
        lines.append(
            f"| {name} | {m['ndcg_at_10']:.4f} | {m['recall_at_100']:.4f} | {m['mrr_at_10']:.4f} | "
            f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} |"
        )
    b = out["build"]
    lines += [
        "",
        f"Build: {b['seconds']} s ({b['docs_per_s']} docs/s); peak RSS {out['peak_rss_mb']} MB; "
        f"model {out['settings']['model']}; dense index {out['settings']['dense_index']}; "
        f"fusion {out['settings']['fusion']}; documents as {out['settings']['source_kind']} "
        f"({out['settings']['sentences']} sentence vectors); {out['machine']['cpus']} CPUs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--beir-dir", required=True, help="BEIR folder with corpus.jsonl, queries.jsonl, qrels/")
    p.add_argument("--json", dest="json_out", default="bench/results/retrieval.json", help="JSON output path")
    p.add_argument("--split", default="test", help="qrels split (default test)")
    p.add_argument("--depth", type=int, default=100, help="hits retrieved per query (default 100)")
    p.add_argument("--dense-index", default="flat", choices=["flat", "hnsw", "ivfpq"])
    p.add_argument(
        "--source-kind",
        default="abstract",
        choices=["abstract", "guideline", "qa", "user_document"],
        help="what the corpus documents are (default abstract; guideline for MedQuAD pages). "
        "Abstracts also get sentence vectors, as in the product.",
    )
    p.add_argument("--model", default="", help="local sentence-transformers folder (default: bundled MiniLM)")
    p.add_argument("--index-dir", default="", help="keep the built index here instead of a temp folder")
    p.add_argument(
        "--cache-dir",
        default="",
        help="reuse/store passage embeddings here (build time then excludes encoding)",
    )
    p.add_argument(
        "--max-queries", type=int, default=0, help="evaluate only the first N queries (smoke runs)"
    )
    p.add_argument("--progress", action="store_true", help="show progress bars")
    args = p.parse_args(argv)
    out = run(args)
    md = markdown(out)
    print(md)
    path = Path(args.json_out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(md, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
