"""The answer tasks on the offline path: ask, explain-labs, prepare-visit, plain-language, and the CLI."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "answer"))

import records_db  # noqa: E402

from workbench.answer import (  # noqa: E402
    Answer,
    ask,
    explain_labs,
    load_patient_context,
    plain_language,
    prepare_visit,
    select_within_budget,
)
from workbench.answer.context import ContextItem  # noqa: E402
from workbench.answer.tasks import note_items, simplify_sentence  # noqa: E402
from workbench.cli import main  # noqa: E402
from workbench.types import Hit  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "answer"

PASSAGES = [
    (
        "A",
        "Hemoglobin A1c reflects average blood glucose over the previous two to three months. "
        "Values of 6.5% or higher are consistent with diabetes. "
        "The trial was funded by a national agency.",
    ),
    (
        "B",
        "LDL cholesterol above 130 mg/dL is associated with higher cardiovascular risk. "
        "Statin therapy lowers LDL cholesterol by 30 to 50 percent.",
    ),
    (
        "C",
        "Estimated glomerular filtration rate (eGFR) measures kidney filtration. "
        "A falling eGFR can indicate declining kidney function.",
    ),
    (
        "D",
        "Metformin lowered HbA1c by about one percentage point versus placebo in type 2 diabetes. "
        "Metformin lowered HbA1c by about one percentage point compared with placebo in type 2 diabetes. "
        "Gastrointestinal side effects were common.",
    ),
    ("E", "Vitamin D supplementation did not reduce fractures in community-dwelling older adults."),
]


class KeywordRetriever:
    """Ranks the passages above by shared content words (the network-free edge for task tests)."""

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid", filters: Any = None) -> list[Hit]:
        from workbench.answer.text import content_words

        q = content_words(query)
        scored = sorted(PASSAGES, key=lambda p: -len(q & content_words(p[1])))
        return [
            Hit(
                chunk_id=f"c{name}",
                doc_id=f"doc{name}",
                score=1.0 / (i + 1),
                title=f"Paper {name}",
                source="PubMed",
                snippet=text[:80],
                text=text,
                metadata={"pmid": f"9{i}"},
            )
            for i, (name, text) in enumerate(scored[:k])
        ]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return records_db.build(tmp_path_factory.mktemp("tasks") / "ws")


def test_offline_ask_cites_relevant_non_redundant_sentences() -> None:
    answer = ask("Does metformin lower HbA1c in type 2 diabetes?", index=KeywordRetriever(), k=5)
    assert answer.model == "offline-extractive"
    assert "extractive" in answer.notice.lower()
    assert answer.sentences and all(s.supported and len(s.citations) == 1 for s in answer.sentences)
    texts = [s.text for s in answer.sentences]
    assert any("Metformin lowered HbA1c" in t for t in texts)
    # The two near-identical metformin sentences are not both quoted.
    assert sum("Metformin lowered HbA1c" in t for t in texts) == 1
    assert not any("Vitamin D" in t or "funded" in t for t in texts)
    data = answer.to_dict()
    assert set(data) >= {"answer", "sentences", "sources", "records", "removed_citations", "model"}
    for s in data["sentences"]:
        assert set(s) >= {"text", "citations", "supported", "support_score"}
    for src in data["sources"]:
        assert set(src) >= {"id", "doc_id", "title", "source", "snippet"}


def test_budget_prefers_relevant_items_and_skips_what_does_not_fit() -> None:
    items = [
        ContextItem(kind="passage", text="x " * 400, relevance=0.9, doc_id="long"),
        ContextItem(kind="passage", text="short relevant", relevance=0.8, doc_id="short"),
        ContextItem(kind="passage", text="short less relevant", relevance=0.1, doc_id="weak"),
        ContextItem(kind="record", text="HbA1c 7.4 %", relevance=0.95, table="observations"),
    ]
    chosen = select_within_budget(items, 60)
    assert [it.doc_id or it.table for it in chosen] == ["short", "weak", "observations"]
    assert [it.number for it in chosen] == [1, 2, 3]
    assert [it.doc_id or it.table for it in select_within_budget(items, 26)] == ["short", "observations"]


def test_ask_about_a_patient_cites_records(workspace: Any) -> None:
    answer = ask(
        "Is my HbA1c high and what does HbA1c measure?",
        index=KeywordRetriever(),
        patient="pat-0001",
        workspace=workspace,
    )
    assert answer.records, "the patient's HbA1c record should be cited"
    rec = next(r for r in answer.records if r["resource_id"] == "obs-a1c-3")
    assert rec["table"] == "observations" and rec["value"] == 7.4 and rec["unit"] == "%"
    assert rec["flag"] == "H" and rec["ref_high"] == 5.6 and rec["date"].startswith("2024-03-05")
    assert "Maribel" not in answer.to_json()


def test_explain_labs_covers_abnormal_and_changing_results(workspace: Any) -> None:
    answer = explain_labs("pat-0001", workspace=workspace, index=KeywordRetriever())
    ids = {r["resource_id"] for r in answer.records}
    assert {"obs-a1c-3", "obs-ldl-1", "obs-egfr-2"} <= ids
    assert "obs-hb-1" not in ids  # normal and stable
    assert answer.sources, "each result should come with evidence"
    assert "diagnose" in answer.notice and all(s.citations for s in answer.sentences)
    ldl = next(s for s in answer.sentences if "LDL" in s.text and "162" in s.text)
    assert "reference range below 130" in ldl.text


def test_prepare_visit_lists_changes_problems_and_questions(workspace: Any) -> None:
    answer = prepare_visit("pat-0001", workspace=workspace)
    texts = [s.text for s in answer.sentences]
    assert any(t.startswith("Your last encounter") and "2024-03-05" in t for t in texts)
    assert any(
        t.startswith("New or updated at that encounter or since") and "Hemoglobin A1c" in t for t in texts
    )
    assert any(t.startswith("Open problem") and "diabetes" in t for t in texts) or any(
        "diabetes" in t for t in texts if t.startswith("New or updated")
    )
    questions = [t for t in texts if t.startswith("Question to ask")]
    assert questions and all(s.citations for s in answer.sentences)
    assert not any("sinusitis" in t and t.startswith("Open problem") for t in texts)


def test_patient_context_uses_pseudonym_and_age(workspace: Any) -> None:
    pctx = load_patient_context(workspace, "pat-0001")
    assert pctx.pseudo_id.startswith("P-") and pctx.meta == {"sex": "female", "age": 62}
    # The pseudonym that `workbench records patients` lists resolves to the same patient.
    assert load_patient_context(workspace, pctx.pseudo_id).patient_id == "pat-0001"
    assert load_patient_context(workspace, "Patient/pat-0001").patient_id == "pat-0001"
    record_ids = {f.extra["pseudo_id"] for f in pctx.facts}
    assert len(record_ids) == len(pctx.facts) and not any("obs-" in r for r in record_ids)


def test_glossary_simplification() -> None:
    seen: set[str] = set()
    out = simplify_sentence(
        "• Medical Treatment: Continue lisinopril 20 mg p.o. b.i.d. for hypertension.", seen
    )
    assert (
        out
        == "Continue lisinopril (a blood pressure medicine) 20 mg by mouth twice a day for hypertension (high blood pressure)."
    )
    again = simplify_sentence("Hypertension is controlled.", seen)
    assert again == "Hypertension is controlled."  # explained once only
    assert simplify_sentence("Denies fevers.", set()) == "Reports no fevers."


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("aci_valid_*.txt")))
def test_plain_language_keeps_every_note_sentence_traceable(name: str) -> None:
    path = FIXTURES / name
    note = path.read_text(encoding="utf-8")
    answer = plain_language(path)
    items = note_items(note)
    assert answer.model == "offline-extractive"
    assert len(answer.sentences) >= len(items) - 2
    cited = {n for s in answer.sentences for n in s.citations}
    assert cited == {it.number for it in items}  # every fact of the note is restated and cited
    assert answer.supported_ratio >= 0.95
    assert all(src["kind"] == "note" for src in answer.sources)
    assert "diagnosis" in answer.notice
    # Numbers survive the rewrite.
    for num in re.findall(r"\b\d+(?:\.\d+)?\b", note)[:30]:
        assert num in answer.text


def test_renderers_escape_and_flag_unsupported() -> None:
    from workbench.answer.citations import SentenceCheck

    item = ContextItem(kind="passage", text="<b>bold</b> claim", number=1, title="T <script>", doc_id="d")
    ans = Answer(
        task="ask",
        question="q <i>",
        text="x",
        sentences=[
            SentenceCheck("Claim <script>alert(1)</script>", [1], True, 0.9),
            SentenceCheck("Uncited claim", [], False, 0.0),
        ],
        context=[item],
    )
    html = ans.to_html()
    assert "<script>" not in html and "&lt;script&gt;" in html and "wb-unsupported" in html
    md = ans.to_markdown()
    assert "Uncited claim _(unsupported)_" in md and "[1] T <script>" in md
    assert json.loads(ans.to_json())["sources"][0]["id"] == 1


def test_cli_plain_language_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    html_out = tmp_path / "out.html"
    rc = main(["plain-language", str(FIXTURES / "aci_valid_D2N073.txt"), "--json", "--html", str(html_out)])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "offline-extractive"
    assert data["sentences"][0]["citations"] == [1]
    assert html_out.read_text().startswith('<div class="wb-answer">')


def test_cli_prepare_visit_and_explain_labs(
    workspace: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WB_PASSPHRASE", records_db.PASSPHRASE)
    rc = main(["prepare-visit", "--patient", "pat-0001", "--workspace", str(workspace.root), "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["records"] and data["task"] == "prepare-visit"
    rc = main(["explain-labs", "--patient", "pat-00", "--workspace", str(workspace.root), "--no-evidence"])
    out = capsys.readouterr()
    assert rc == 1 and "matches 2 patients" in out.err  # an ambiguous prefix is refused, not guessed
    rc = main(["explain-labs", "--patient", "pat-0001", "--workspace", str(workspace.root), "--no-evidence"])
    assert rc == 0 and "Cholesterol in LDL" in capsys.readouterr().out


def test_cli_plain_language_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "note.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    assert main(["plain-language", str(bad)]) == 1
    assert "note.txt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.retrieval import EvidenceIndex
    from workbench.types import Document

    folder = tmp_path_factory.mktemp("answer-index") / "index"
    docs = [
        Document(
            doc_id=f"doc{name}", title=f"Paper {name}", text=text, corpus="test", metadata={"pmid": f"77{i}"}
        )
        for i, (name, text) in enumerate(PASSAGES)
    ]
    EvidenceIndex.build(docs, folder)
    return folder


def test_cli_ask_json_contract(
    small_index: Path, workspace: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = main(["ask", "Does metformin lower HbA1c?", "--index", str(small_index), "--json", "--k", "3"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "offline-extractive" and data["removed_citations"] == []
    assert data["sentences"] and all(s["supported"] for s in data["sentences"])
    cited = {n for s in data["sentences"] for n in s["citations"]}
    assert cited == {src["id"] for src in data["sources"]}
    assert any(src["doc_id"] == "docD" and src["pmid"] == "773" for src in data["sources"])
    monkeypatch.setenv("WB_PASSPHRASE", records_db.PASSPHRASE)
    rc = main(
        [
            "ask",
            "Is my LDL cholesterol high?",
            "--index",
            str(small_index),
            "--patient",
            "pat-0001",
            "--workspace",
            str(workspace.root),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "observations/obs-ldl-1" in out and "Maribel" not in out


def test_cli_ask_without_index_says_how_to_build_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "anything", "--index", str(tmp_path / "missing")]) == 1
    assert "workbench index build" in capsys.readouterr().err
