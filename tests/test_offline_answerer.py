"""Offline extractive answerer: which sources lead and which may join (no model, no encoder)."""

from __future__ import annotations

from typing import Literal

from workbench.answer.context import ContextItem
from workbench.answer.offline import select_sentences

QUESTION = "Does aspirin reduce stroke risk in adults with atrial fibrillation"


def _passage(number: int, doc: str, relevance: float, text: str) -> ContextItem:
    return ContextItem(
        kind="passage",
        text=text,
        number=number,
        relevance=relevance,
        doc_id=doc,
        corpus="t",
        chunk_id=f"{doc}#{number}",
    )


def _context() -> list[ContextItem]:
    return [
        # The study retrieval ranks first, in two passages.
        _passage(1, "A", 0.9, "Aspirin lowered stroke risk in the randomised cohort of patients."),
        _passage(2, "A", 0.85, "Aspirin reduced stroke risk in adults at each yearly follow up visit."),
        # Another document echoes the question's words almost verbatim.
        _passage(
            3,
            "B",
            0.88,
            "Stroke risk in adults with atrial fibrillation did reduce under aspirin in a registry.",
        ),
        _passage(4, "C", 0.1, "Hospital parking fees rose sharply across the region during the decade."),
    ]


def _cited_docs(lead: Literal["item", "sentence"]) -> set[str]:
    items = _context()
    by_number = {it.number: it.doc_id for it in items}
    picked = select_sentences(QUESTION, items, None, lead=lead)
    return {by_number[c.item] for c in picked}


def test_top_ranked_document_leads_with_all_its_passages() -> None:
    docs = _cited_docs("item")
    assert "A" in docs
    assert "C" not in docs


def test_leading_by_best_sentence_drops_the_top_ranked_study() -> None:
    # The older rule let one verbatim-looking sentence decide the lead; the top-ranked study's
    # weaker-matching passage then had to clear the strict floor and was dropped.
    items = _context()
    picked = select_sentences(QUESTION, items, None, lead="sentence")
    assert 1 not in {c.item for c in picked}
    assert 1 in {c.item for c in select_sentences(QUESTION, items, None, lead="item")}


def test_records_join_only_near_the_best_relevance() -> None:
    items = _context()[:1] + [
        ContextItem(kind="record", text="Parking permit issued on 2020-01-02.", number=9, relevance=0.1),
        ContextItem(
            kind="record",
            text="Condition: atrial fibrillation (2019-04-01); aspirin 81 mg daily; stroke risk score 3.",
            number=10,
            relevance=0.95,
        ),
    ]
    cited = {c.item for c in select_sentences(QUESTION, items, None)}
    assert 9 not in cited
    assert 10 in cited
