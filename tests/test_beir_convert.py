"""bench/beir_convert.py: PubMedQA and MedQuAD turned into BEIR folders the retrieval benchmark reads."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from workbench.corpus import read_beir_jsonl
from workbench.errors import ReaderError

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures" / "beir_convert"


def _load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / file)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


conv = _load("bench_beir_convert", "beir_convert.py")
retr = _load("bench_retrieval", "retrieval.py")


def _jsonl(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_pubmedqa_contexts_become_corpus_questions_queries(tmp_path: Path) -> None:
    out = tmp_path / "pq"
    assert conv.main(["pubmedqa", str(FIX / "ori_pqal_tiny.json"), str(out)]) == 0
    corpus = _jsonl(out / "corpus.jsonl")
    # the record without contexts has nothing to retrieve and is dropped with its question
    assert [d["_id"] for d in corpus] == ["90000001", "90000002"]
    assert corpus[0]["title"] == ""
    assert corpus[0]["text"] == (
        "Evening caffeine may delay sleep onset.\n\n"
        "In 40 invented adults, tea after 6 pm shortened sleep by 20 minutes."
    )
    assert "SECRET-CONCLUSION" not in (out / "corpus.jsonl").read_text(encoding="utf-8")
    queries = retr.load_queries(out / "queries.jsonl")
    assert queries == {
        "90000001": "Does evening tea intake shorten sleep in adults?",
        "90000002": "Is walking speed linked to knee pain?",
    }
    assert retr.load_qrels(out / "qrels" / "test.tsv") == {
        "90000001": {"90000001": 1},
        "90000002": {"90000002": 1},
    }
    # the benchmark's own corpus reader accepts the output
    assert [d.doc_id for d in read_beir_jsonl(out / "corpus.jsonl")] == ["90000001", "90000002"]
    assert json.loads((out / "stats.json").read_text())["queries"] == 2


def test_medquad_answers_are_documents_and_repeated_questions_merge(tmp_path: Path) -> None:
    out = tmp_path / "mq"
    stats = conv.convert_medquad(FIX / "medquad", out)
    corpus = {d["_id"]: d for d in _jsonl(out / "corpus.jsonl")}
    # pair 2 of SiteA has a withdrawn answer: skipped, the other pairs keep their own pair ids
    assert sorted(corpus) == [
        "SiteA-0000001-1",
        "SiteA-0000001-3",
        "SiteB-0000001-1",
        "SiteB-0000001-2",
        "SiteB-0000002-7",
    ]
    assert corpus["SiteA-0000001-3"] == {
        "_id": "SiteA-0000001-3",
        "title": "Fooitis",
        "text": "Rest and fluids are the usual care.",
    }
    assert corpus["SiteB-0000002-7"]["title"] == "Barosis"  # the <doc>/<pair> variant
    queries = retr.load_queries(out / "queries.jsonl")
    qrels = retr.load_qrels(out / "qrels" / "test.tsv")
    by_text = {t: q for q, t in queries.items()}
    assert len(by_text) == len(queries) == 4  # "What is (are) Fooitis ?" asked on both sites: one query
    assert set(qrels[by_text["What is (are) Fooitis ?"]]) == {"SiteA-0000001-1", "SiteB-0000001-1"}
    # the same answer text (after whitespace clean-up) under two ids: both copies are relevant
    assert set(qrels[by_text["What are the treatments for Fooitis ?"]]) == {
        "SiteA-0000001-3",
        "SiteB-0000001-2",
    }
    assert set(qrels[by_text["How to prevent Fooitis ?"]]) == {"SiteA-0000001-3", "SiteB-0000001-2"}
    assert qrels[by_text["What causes Barosis ?"]] == {"SiteB-0000002-7": 1}
    assert "What are the symptoms of Fooitis ?" not in by_text
    assert stats["question_texts_shared_by_several_answers"] == 1
    assert stats["answers_with_verbatim_copies"] == 2
    assert stats["files_with_positional_pair_ids"] == 0


def test_medquad_subsample_is_deterministic_and_keeps_the_corpus(tmp_path: Path) -> None:
    a = conv.convert_medquad(FIX / "medquad", tmp_path / "a", max_queries=2)
    conv.convert_medquad(FIX / "medquad", tmp_path / "b", max_queries=2)
    assert a["queries"] == 2 and a["documents"] == 5
    qa = (tmp_path / "a" / "queries.jsonl").read_bytes()
    assert qa == (tmp_path / "b" / "queries.jsonl").read_bytes()
    kept = set(retr.load_queries(tmp_path / "a" / "queries.jsonl"))
    assert set(retr.load_qrels(tmp_path / "a" / "qrels" / "test.tsv")) == kept
    rest = conv.convert_medquad(FIX / "medquad", tmp_path / "c", max_queries=2, complement=True)
    left = set(retr.load_queries(tmp_path / "c" / "queries.jsonl"))
    assert rest["queries"] == 2 and rest["documents"] == 5 and not left & kept


def test_bad_inputs_name_the_file_and_leave_no_half_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert conv.main(["medquad", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err
    bad = tmp_path / "mq" / "1_X_QA"
    bad.mkdir(parents=True)
    (bad / "0000009.xml").write_text("<Document><QAPair><Question>Q?", encoding="utf-8")
    with pytest.raises(ReaderError, match="0000009.xml"):
        conv.convert_medquad(tmp_path / "mq", tmp_path / "o")
    assert not (tmp_path / "o" / "corpus.jsonl").exists()
    trunc = tmp_path / "ori.json"
    trunc.write_text((FIX / "ori_pqal_tiny.json").read_text(encoding="utf-8")[:300], encoding="utf-8")
    with pytest.raises(ReaderError, match="ori.json"):
        conv.convert_pubmedqa(trunc, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_distractors_are_added_with_prefixed_ids_and_never_relevant(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(
        '{"_id": "90000001", "title": "An invented distractor", "text": "Tea and sleep, invented."}\n'
        '{"_id": "7", "title": "Title only", "text": ""}\n',
        encoding="utf-8",
    )
    out = tmp_path / "px"
    argv = ["pubmedqa", str(FIX / "ori_pqal_tiny.json"), str(out), "--distractors", str(other)]
    assert conv.main(argv) == 0
    ids = [d["_id"] for d in _jsonl(out / "corpus.jsonl")]
    # the distractor's id clashes with a PMID: the x- prefix keeps both
    assert ids == ["90000001", "90000002", "x-90000001", "x-7"]
    qrels = retr.load_qrels(out / "qrels" / "test.tsv")
    assert all(not d.startswith("x-") for rel in qrels.values() for d in rel)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["distractors"]["documents"] == 2 and stats["documents"] == 4
    assert conv.main([*argv[:3], "--distractors", str(tmp_path / "nope.jsonl")]) == 2
