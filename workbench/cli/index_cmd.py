"""`workbench index build|info|add|delete` and `workbench search`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.cli._common import add_json_flag, print_json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the index and search commands to ``sub``."""
    index = sub.add_parser("index", help="Build and inspect the evidence index.")
    isub = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    build = isub.add_parser(
        "build", help="Build the evidence index of the shipped corpora (or the named ones)."
    )
    build.add_argument(
        "--corpus", action="append", default=None, help="Corpus to index (repeatable; default all)."
    )
    build.add_argument(
        "--folder", type=Path, default=None, help="Index folder (default: WB_INDEX_DIR or ./index)."
    )
    build.add_argument(
        "--if-missing", action="store_true", help="Do nothing when a valid index already exists."
    )
    build.add_argument(
        "--no-cache", action="store_true", help="Encode every passage; ignore the shipped embeddings."
    )
    build.add_argument(
        "--write-cache", action="store_true", help="Rewrite the shipped embedding cache from this build."
    )
    build.add_argument(
        "--dense-index", choices=["flat", "hnsw", "ivfpq"], default=None, help="FAISS index type."
    )
    add_json_flag(build)
    build.set_defaults(func=_build)

    info = isub.add_parser("info", help="Show the index manifest: model, counts, corpora, versions.")
    info.add_argument("--folder", type=Path, default=None)
    add_json_flag(info)
    info.set_defaults(func=_info)

    add = isub.add_parser(
        "add", help="Add a user's documents (file or folder) to the index without a rebuild."
    )
    add.add_argument("path", type=Path)
    add.add_argument("--corpus", required=True, help="Corpus name for these documents.")
    add.add_argument("--folder", type=Path, default=None)
    add_json_flag(add)
    add.set_defaults(func=_add)

    delete = isub.add_parser("delete", help="Delete documents from the index by id.")
    delete.add_argument("doc_ids", nargs="+")
    delete.add_argument("--folder", type=Path, default=None)
    add_json_flag(delete)
    delete.set_defaults(func=_delete)

    search = sub.add_parser("search", help="Search the evidence index.")
    search.add_argument("query")
    search.add_argument("--k", type=int, default=10, help="Number of hits (default 10).")
    search.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    search.add_argument("--fusion", choices=["zscore", "rrf", "weighted"], default=None)
    search.add_argument("--corpus", action="append", default=None, help="Only this corpus (repeatable).")
    search.add_argument("--year-min", type=int, default=None)
    search.add_argument("--year-max", type=int, default=None)
    search.add_argument("--pub-type", action="append", default=None, help="Publication type (repeatable).")
    search.add_argument(
        "--source-kind", action="append", default=None, help="abstract, guideline, qa, user_document"
    )
    search.add_argument(
        "--chunks", action="store_true", help="Return chunks rather than one hit per document."
    )
    search.add_argument("--folder", type=Path, default=None)
    add_json_flag(search)
    search.set_defaults(func=_search)


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from workbench.settings import Settings

    overrides = {}
    if getattr(args, "dense_index", None):
        overrides["dense_index"] = args.dense_index
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if getattr(args, "folder", None):
        settings.index_dir = args.folder
    return settings


def _build(args: argparse.Namespace) -> int:
    from workbench.errors import IndexError_
    from workbench.retrieval import EvidenceIndex, build_index

    settings = _settings(args)
    if args.if_missing:
        try:
            index = EvidenceIndex.load(settings.index_dir)
            wanted = set(args.corpus or [])
            if not wanted or wanted <= set(index.manifest["corpora"]):
                msg = (
                    f"index at {settings.index_dir} is present and valid ({len(index)} chunks); nothing to do"
                )
                if args.json:
                    print_json({"built": False, "folder": str(settings.index_dir), "chunks": len(index)})
                else:
                    print(msg)
                return 0
        except IndexError_ as exc:
            print(f"building the index: {exc}", file=sys.stderr)
    index = build_index(
        args.corpus,
        settings=settings,
        use_cache=not args.no_cache,
        write_cache=args.write_cache,
        progress=not args.json and sys.stderr.isatty(),
    )
    info = index.info()
    if args.json:
        print_json({"built": True, **info})
    else:
        counts = info["counts"]
        cache = info.get("embedding_cache") or {}
        print(
            f"built {settings.index_dir}: {counts['documents']} documents, {counts['chunks']} chunks "
            f"in {info['build_seconds']} s (embedding cache: {cache.get('hits', 0)} hits, "
            f"{cache.get('misses', 0)} encoded)"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from workbench.retrieval import EvidenceIndex

    index = EvidenceIndex.load(_settings(args).index_dir)
    info = index.info()
    if args.json:
        print_json(info)
        return 0
    m = info["model"]
    print(f"index:    {info['folder']}")
    print(f"model:    {m['name']} ({m['dimension']} dims, fingerprint {m['fingerprint']})")
    print(f"dense:    {info['dense_index']}; fusion: {info.get('fusion', 'rrf')}")
    print(f"chunks:   {info['live_chunks']} live, {info['deleted_chunks']} deleted")
    for name, c in sorted(info["corpora"].items()):
        print(f"  {name:<12} {c.get('documents', 0):>7} documents {c.get('chunks', 0):>8} chunks")
    return 0


def _add(args: argparse.Namespace) -> int:
    from workbench.corpus import read_documents
    from workbench.retrieval import EvidenceIndex

    index = EvidenceIndex.load(_settings(args).index_dir)
    n = index.add_documents(read_documents(args.path, corpus=args.corpus))
    if args.json:
        print_json({"added_chunks": n, "live_chunks": len(index)})
    else:
        print(f"added {n} chunks from {args.path} as corpus {args.corpus}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from workbench.retrieval import EvidenceIndex

    index = EvidenceIndex.load(_settings(args).index_dir)
    n = index.delete_documents(args.doc_ids)
    if args.json:
        print_json({"deleted_chunks": n, "live_chunks": len(index)})
    else:
        print(f"deleted {n} chunks")
    return 0 if n else 1


def _search(args: argparse.Namespace) -> int:
    from workbench.retrieval import EvidenceIndex, SearchFilters

    index = EvidenceIndex.load(_settings(args).index_dir)
    filters = None
    if any((args.corpus, args.year_min, args.year_max, args.pub_type, args.source_kind)):
        filters = SearchFilters(
            corpora=args.corpus,
            year_min=args.year_min,
            year_max=args.year_max,
            publication_types=args.pub_type,
            source_kinds=args.source_kind,
        )
    hits = index.search(
        args.query, k=args.k, mode=args.mode, filters=filters, fusion=args.fusion, collapse=not args.chunks
    )
    if args.json:
        print_json(
            [
                {
                    "doc_id": h.doc_id,
                    "chunk_id": h.chunk_id,
                    "score": round(h.score, 6),
                    "title": h.title,
                    "source": h.source,
                    "snippet": h.snippet,
                    "corpus": h.corpus,
                    "section": h.section,
                    "start": h.start,
                    "end": h.end,
                }
                for h in hits
            ]
        )
        return 0
    if not hits:
        print("no results")
    for i, h in enumerate(hits, 1):
        print(f"{i:>2}. [{h.corpus}] {h.title}  ({h.score:.4f})")
        print(f"    {h.source}  {h.chunk_id}" + (f"  §{h.section}" if h.section else ""))
        print(f"    {h.snippet}")
    return 0
