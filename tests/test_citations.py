"""Citation parsing and verification (unit and property tests)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.answer.citations import (
    SUPPORT_THRESHOLD,
    SupportScorer,
    alce_scores,
    attach_citations,
    find_citations,
    format_citations,
    parse_citations,
    strip_citations,
    verify_text,
)
from workbench.answer.text import split_sentences, token_recall


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Metformin lowers HbA1c [1].", [1]),
        ("Both [1, 3] agree.", [1, 3]),
        ("A range [2-4] here.", [2, 3, 4]),
        ("En dash [2–3] and semicolon [5; 6].", [2, 3, 5, 6]),
        ("Adjacent [1][2] and repeat [1].", [1, 2]),
        ("No citation here.", []),
        ("Not a citation [a] nor [1a] nor [95% CI].", []),
        ("Backwards [5-2] keeps the ends.", [5, 2]),
    ],
)
def test_parse_citations(text: str, expected: list[int]) -> None:
    assert parse_citations(text) == expected


def test_huge_or_backwards_ranges_are_flagged_malformed() -> None:
    marks = find_citations("x [1-5000] y [3-1]")
    assert [m.malformed for m in marks] == [True, True]
    assert marks[0].numbers == (1, 5000)


def test_strip_and_attach() -> None:
    assert strip_citations("Lowers HbA1c [1, 2] in adults [3].") == "Lowers HbA1c in adults."
    assert attach_citations("Lowers HbA1c.", [1, 2]) == "Lowers HbA1c [1, 2]."
    assert attach_citations("No punctuation", [4]) == "No punctuation [4]"
    assert attach_citations("Nothing cited.", []) == "Nothing cited."


def test_sentence_split_keeps_markers_with_their_sentence() -> None:
    text = "Dose was 1.5 mg vs. placebo [1]. It is e.g. safe. [2] Next one [3, 4]."
    assert split_sentences(text) == [
        "Dose was 1.5 mg vs. placebo [1].",
        "It is e.g. safe. [2]",
        "Next one [3, 4].",
    ]


numbers = st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=6, unique=True)


@given(numbers)
def test_format_then_parse_round_trips(nums: list[int]) -> None:
    assert parse_citations(format_citations(nums)) == nums


@given(st.integers(1, 40), st.integers(0, 20))
def test_ranges_expand_to_every_number(lo: int, width: int) -> None:
    assert parse_citations(f"claim [{lo}-{lo + width}].") == list(range(lo, lo + width + 1))


words = st.text(alphabet=st.sampled_from("abcdefgh "), min_size=1, max_size=40)


@given(st.lists(st.tuples(words, numbers), min_size=1, max_size=5), st.sets(st.integers(1, 60), max_size=20))
@settings(max_examples=80, deadline=None)
def test_verification_keeps_only_context_citations(
    parts: list[tuple[str, list[int]]], context: set[int]
) -> None:
    """Whatever the model cites, verified sentences cite only context items and the rest is reported."""
    text = " ".join(attach_citations(f"Claim {w.strip() or 'x'}.", nums) for w, nums in parts)
    items = {n: f"evidence {n} about claim" for n in context}
    result = verify_text(text, items, SupportScorer(None))
    cited_everywhere = {n for _, nums in parts for n in nums}
    kept = {n for s in result.sentences for n in s.citations}
    removed = {r["citation"] for r in result.removed_citations}
    assert kept <= context
    assert removed == cited_everywhere - context
    assert kept | removed == cited_everywhere
    for s in result.sentences:
        assert s.supported <= bool(s.citations)
        assert 0.0 <= s.support_score <= 1.0
    assert set(parse_citations(result.text)) <= context


@given(st.text(max_size=200))
@settings(max_examples=100, deadline=None)
def test_parsing_never_crashes_and_strip_removes_all_markers(text: str) -> None:
    for n in parse_citations(text):
        assert isinstance(n, int) and n >= 0
    assert find_citations(strip_citations(strip_citations(text))) == []


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
@settings(max_examples=60, deadline=None)
def test_split_sentences_keeps_content(text: str) -> None:
    squash = lambda t: re.sub(r"\s+", "", t)  # noqa: E731
    assert squash("".join(split_sentences(text))) == squash(text)


def test_token_recall() -> None:
    assert token_recall("metformin lowers glucose", "Metformin lowers blood glucose levels") == 1.0
    assert token_recall("the of and", "anything") == 1.0  # nothing to check
    assert token_recall("aspirin prevents stroke", "metformin lowers glucose") == 0.0


@pytest.fixture(scope="module")
def scorer() -> SupportScorer:
    from workbench.retrieval.embedder import load_embedder

    return SupportScorer(load_embedder())


def test_support_scores_separate_supported_from_unsupported(scorer: SupportScorer) -> None:
    evidence = (
        "In adults with type 2 diabetes, metformin reduced HbA1c by 1.1 percentage points versus placebo. "
        "Gastrointestinal adverse events were more frequent with metformin."
    )
    paraphrase = "Metformin lowered HbA1c by about 1.1 points compared with placebo in type 2 diabetes."
    unrelated = "Statins reduce the risk of stroke in elderly patients with atrial fibrillation."
    wrong_number = "Metformin raised blood pressure by 30 mmHg in children."
    assert scorer.support(paraphrase, evidence) >= SUPPORT_THRESHOLD + 0.2
    assert scorer.support(unrelated, evidence) < SUPPORT_THRESHOLD
    assert scorer.support(wrong_number, evidence) < scorer.support(paraphrase, evidence)


def test_verify_text_reports_invalid_and_unsupported(scorer: SupportScorer) -> None:
    items = {
        1: "Regular aerobic exercise lowered systolic blood pressure by 5 mmHg in adults with hypertension.",
        2: "Vitamin D supplements did not reduce fractures in community-dwelling older adults.",
    }
    text = (
        "Aerobic exercise lowers systolic blood pressure in hypertension [1]. "
        "Vitamin D does not prevent fractures in older adults [2, 7]. "
        "Green tea cures cancer [1]. "
        "This sentence cites nothing."
    )
    result = verify_text(text, items, scorer)
    assert [s.citations for s in result.sentences] == [[1], [2], [1], []]
    assert [s.supported for s in result.sentences] == [True, True, False, False]
    assert result.removed_citations == [{"sentence": 1, "citation": 7, "reason": "not in context"}]
    assert "[7]" not in result.text and "[2]" in result.text
    assert result.report["unsupported"] == 2


def test_alce_precision_penalises_irrelevant_extra_citation(scorer: SupportScorer) -> None:
    items = {
        1: "Regular aerobic exercise lowered systolic blood pressure in adults with hypertension.",
        2: "Vitamin D supplements did not reduce fractures in older adults.",
    }
    sentences = [("Aerobic exercise lowers blood pressure in hypertension.", [1, 2])]
    scores = alce_scores(sentences, items, scorer)
    assert scores["citation_recall"] == 1.0
    assert scores["citation_precision"] == 0.5
    assert (
        alce_scores([("Aerobic exercise lowers blood pressure.", [2])], items, scorer)["citation_recall"]
        == 0.0
    )
