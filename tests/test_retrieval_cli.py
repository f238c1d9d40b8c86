"""`workbench index ...`, `workbench search` and the retrieval benchmark on small real data."""
# ruff: noqa: F811  (pytest fixtures imported from retrieval_data are parameters here)

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from retrieval_data import DOCS, built_index, index_dir, make_docs  # noqa: F401 - fixtures

from workbench.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_search_json_contract(index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hits = run_json(capsys, "search", "metformin HbA1c", "--k", "3", "--json", "--folder", str(index_dir))
    assert isinstance(hits, list) and 1 <= len(hits) <= 3
    for key in ("doc_id", "chunk_id", "score", "title", "source", "snippet"):
        assert key in hits[0]
    assert hits[0]["doc_id"] == "d2"
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_search_filters_and_text_output(index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hits = run_json(
        capsys, "search", "blood pressure", "--corpus", "guide", "--json", "--folder", str(index_dir)
    )
    assert hits and {h["corpus"] for h in hits} == {"guide"}
    assert main(["search", "blood pressure", "--mode", "bm25", "--folder", str(index_dir)]) == 0
    out = capsys.readouterr().out
    assert " 1. [" in out and "blood pressure" in out.lower()


def test_output_into_a_closed_pipe_stops_quietly(index_dir: Path) -> None:
    # `workbench search ... --json | head -c 0`: the reader is gone before anything is written
    code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["search", "blood pressure", "--mode", "bm25", "--json", "--folder", str(index_dir)]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_unknown_corpus_is_a_clear_error(index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "x", "--corpus", "nosuch", "--folder", str(index_dir)]) == 1
    assert "nosuch" in capsys.readouterr().err
    assert main(["index", "build", "--corpus", "nosuch", "--folder", str(index_dir.parent / "new")]) == 1
    assert "nosuch" in capsys.readouterr().err


def test_info_add_delete(index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, "index", "info", "--json", "--folder", str(index_dir))
    assert info["live_chunks"] == len(DOCS) and info["model"]["name"] == "all-MiniLM-L6-v2"

    notes = tmp_path / "my-guidelines"
    notes.mkdir()
    (notes / "gout.md").write_text(
        "# Gout\n\nGout flares are treated with colchicine or NSAIDs.\n", encoding="utf-8"
    )
    added = run_json(
        capsys, "index", "add", str(notes), "--corpus", "mine", "--json", "--folder", str(index_dir)
    )
    assert added["added_chunks"] >= 1
    hits = run_json(
        capsys, "search", "colchicine for gout flares", "--k", "1", "--json", "--folder", str(index_dir)
    )
    assert hits[0]["corpus"] == "mine"
    gone = run_json(capsys, "index", "delete", hits[0]["doc_id"], "--json", "--folder", str(index_dir))
    assert gone["deleted_chunks"] >= 1
    hits = run_json(capsys, "search", "colchicine for gout flares", "--json", "--folder", str(index_dir))
    assert all(h["corpus"] != "mine" for h in hits)


def test_build_if_missing_keeps_a_valid_index(index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (index_dir / "manifest.json").read_bytes()
    out = run_json(capsys, "index", "build", "--if-missing", "--json", "--folder", str(index_dir))
    assert out["built"] is False
    assert (index_dir / "manifest.json").read_bytes() == before


def test_retrieval_benchmark_writes_contract_json(tmp_path: Path) -> None:
    beir = tmp_path / "tiny"
    (beir / "qrels").mkdir(parents=True)
    with open(beir / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, title, text, *_ in DOCS:
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    queries = {"q1": "metformin lowers HbA1c", "q2": "statins and LDL", "q3": "flu vaccine older adults"}
    with open(beir / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t1\nq3\td5\t1\n")
    out_json = tmp_path / "res.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "retrieval.py"),
            "--beir-dir",
            str(beir),
            "--json",
            str(out_json),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out_json.read_text())
    assert set(res["methods"]) == {"bm25", "dense", "hybrid"}
    for m in res["methods"].values():
        assert set(m) >= {"ndcg_at_10", "recall_at_100", "mrr_at_10", "p50_ms", "p95_ms"}
        assert 0 <= m["ndcg_at_10"] <= 1 and m["p95_ms"] >= m["p50_ms"] > 0
    assert res["methods"]["hybrid"]["recall_at_100"] == 1.0
    assert res["build"]["seconds"] > 0 and res["build"]["docs_per_s"] > 0 and res["peak_rss_mb"] > 0
    assert out_json.with_suffix(".md").read_text().startswith("# Retrieval benchmark")
    assert "| hybrid |" in proc.stdout
