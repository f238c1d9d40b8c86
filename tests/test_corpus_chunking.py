"""Chunking: exact offsets, sections never crossed, token budget, sentence overlap."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.corpus import (
    TokenizerCounter,
    chunk_document,
    count_tokens_default,
    passage_text,
    read_beir_jsonl,
    split_sentences,
)
from workbench.errors import ConfigError
from workbench.types import Document, Section

FIX = Path(__file__).parent / "fixtures" / "corpus"


def _doc(text: str, sections: list[Section] | None = None, **meta: object) -> Document:
    return Document(
        doc_id="d1", title="T", text=text, corpus="c", sections=sections or [], metadata=dict(meta)
    )


def _sentences_in(doc_text: str, start: int, end: int) -> list[tuple[int, int]]:
    return split_sentences(doc_text, start, end)


def test_short_document_is_one_chunk_with_citation_metadata() -> None:
    doc = _doc(
        "Aspirin lowers risk. It was tested in adults.",
        pmid="123",
        doi="10.1/x",
        year=2020,
        journal="J",
        publication_types=["RCT"],
        question="must not be copied",
    )
    (chunk,) = chunk_document(doc)
    assert chunk.chunk_id == "d1#0"
    assert (chunk.start, chunk.end, chunk.text) == (0, len(doc.text), doc.text)
    assert chunk.metadata == {
        "pmid": "123",
        "doi": "10.1/x",
        "year": 2020,
        "journal": "J",
        "publication_types": ["RCT"],
    }
    assert (chunk.title, chunk.corpus, chunk.source_kind, chunk.section) == ("T", "c", "abstract", "")


def test_sentence_splitter_keeps_abbreviations_and_decimals() -> None:
    text = "Values were 1.5 mg (e.g. in adults). Dr. Smith agreed, see Fig. 2 for details! Next one? Yes.\nList item"
    spans = [text[a:b] for a, b in split_sentences(text)]
    assert spans == [
        "Values were 1.5 mg (e.g. in adults).",
        "Dr. Smith agreed, see Fig. 2 for details!",
        "Next one?",
        "Yes.",
        "List item",
    ]


def test_chunks_respect_sections_and_overlap_whole_sentences() -> None:
    s1 = " ".join(f"Sentence number {i} of background." for i in range(12))  # 6 tokens each
    s2 = "Methods were simple. They worked."
    text = s1 + "\n\n" + s2
    doc = _doc(text, [Section("BACKGROUND", 0, len(s1)), Section("METHODS", len(s1) + 2, len(text))])
    chunks = chunk_document(doc, max_tokens=20, overlap=6)
    assert [c.section for c in chunks][-1] == "METHODS"
    back = [c for c in chunks if c.section == "BACKGROUND"]
    assert all(c.end <= len(s1) for c in back)
    for a, b in zip(back, back[1:]):
        shared = text[b.start : a.end]
        assert b.start < a.end, "neighbouring chunks overlap"
        assert shared.startswith("Sentence") and shared.endswith("background."), "overlap is whole sentences"
        assert count_tokens_default(shared) <= 6
    assert all(count_tokens_default(c.text) <= 20 for c in chunks)


def test_over_long_sentence_is_split_inside_with_overlap() -> None:
    long = "word " * 450 + "end."
    doc = _doc("Short one. " + long.strip() + " Tail sentence.")
    chunks = chunk_document(doc, max_tokens=100, overlap=10)
    assert all(count_tokens_default(c.text) <= 100 for c in chunks)
    inside = [c for c in chunks if "word" in c.text]
    assert len(inside) >= 5
    for a, b in zip(inside, inside[1:]):
        assert b.start < a.end <= b.end
    assert chunks[-1].text.endswith("Tail sentence.")


def test_custom_token_counter_is_used() -> None:
    doc = _doc("Alpha beta. Gamma delta. Epsilon zeta.")
    chunks = chunk_document(doc, max_tokens=12, overlap=0, count_tokens=len)  # characters as tokens
    assert [c.text for c in chunks] == ["Alpha beta.", "Gamma delta.", "Epsilon zeta."]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_budget_is_a_config_error(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        chunk_document(_doc("x"), max_tokens=max_tokens, overlap=overlap)


def test_uncovered_text_is_not_lost_and_empty_text_gives_no_chunks() -> None:
    text = "Preamble here. Body starts. Body ends."
    doc = _doc(text, [Section("Body", text.index("Body"), len(text))])
    chunks = chunk_document(doc)
    assert [(c.section, c.text) for c in chunks] == [
        ("", "Preamble here."),
        ("Body", "Body starts. Body ends."),
    ]
    assert chunk_document(_doc("   ")) == []


_words = st.sampled_from(["alpha", "beta", "12.5", "p<0.05", "(n=3)", "x", "e.g.", "Dr.", "über", "Fig."])
_sentence = st.lists(_words, min_size=1, max_size=40).map(lambda ws: " ".join(ws).capitalize() + ".")
_section_text = st.lists(_sentence, min_size=1, max_size=12).map(" ".join)


@st.composite
def _documents(draw: st.DrawFn) -> Document:
    parts = draw(st.lists(_section_text, min_size=1, max_size=4))
    seps = draw(st.lists(st.sampled_from(["\n\n", " ", "\n"]), min_size=len(parts), max_size=len(parts)))
    text, sections = "", []
    for i, part in enumerate(parts):
        if i:
            text += seps[i]
        sections.append(Section(f"S{i}", len(text), len(text) + len(part)))
        text += part
    return _doc(text, sections)


def _wordpiece_like(text: str) -> int:
    """An additive sub-word counter (like BERT WordPiece): long words cost several tokens."""
    return sum((len(t) + 2) // 3 for t in re.findall(r"\w+|[^\w\s]", text))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=_documents(),
    max_tokens=st.integers(5, 60),
    overlap_frac=st.floats(0, 0.9),
    counter=st.sampled_from([count_tokens_default, _wordpiece_like]),
)
def test_chunk_properties(
    doc: Document, max_tokens: int, overlap_frac: float, counter: Callable[[str], int]
) -> None:
    overlap = int(max_tokens * overlap_frac)
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap=overlap, count_tokens=counter)
    by_name = {s.name: s for s in doc.sections}
    covered: dict[str, list[tuple[int, int]]] = {}
    for n, c in enumerate(chunks):
        assert c.chunk_id == f"d1#{n}"
        assert doc.text[c.start : c.end] == c.text and c.text.strip() == c.text and c.text
        sec = by_name[c.section]
        assert sec.start <= c.start < c.end <= sec.end, "chunk crosses its section"
        assert counter(c.text) <= max_tokens, "budget (additive counters never overrun)"
        covered.setdefault(c.section, []).append((c.start, c.end))
    for name, spans in covered.items():
        sec = by_name[name]
        sents = _sentences_in(doc.text, sec.start, sec.end)
        # every sentence (or piece of an over-long one) lies in some chunk: nothing is dropped
        for a, b in sents:
            pieces = [(max(a, s), min(b, e)) for s, e in spans if s < b and e > a]
            assert pieces and min(p[0] for p in pieces) == a and max(p[1] for p in pieces) == b
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a0 < b0 and a1 < b1, "chunks move forward"
            if b0 < a1:  # overlap: whole sentences (or words inside an over-long sentence) worth <= overlap
                assert counter(doc.text[b0:a1]) <= overlap
    assert set(covered) == {s.name for s in doc.sections}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_documents(), max_tokens=st.integers(12, 60), overlap=st.integers(0, 11))
def test_header_in_budget_keeps_whole_passages_within_budget(
    doc: Document, max_tokens: int, overlap: int
) -> None:
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap=overlap, header_in_budget=True)
    for c in chunks:  # the header "T | S<n>" is 3 tokens, so the max_tokens // 4 floor never binds
        assert count_tokens_default(passage_text(c)) <= max_tokens
        assert doc.text[c.start : c.end] == c.text


def test_passage_text_adds_title_and_section() -> None:
    doc = _doc("Body text.", [Section("METHODS", 0, 10)])
    (c,) = chunk_document(doc)
    assert passage_text(c) == "T | METHODS\nBody text."


def test_chunking_speed_on_real_abstracts() -> None:
    docs = list(read_beir_jsonl(FIX / "scifact_sample.jsonl")) * 200  # 1,000 real abstracts
    t = time.perf_counter()
    n = sum(len(chunk_document(d)) for d in docs)
    rate = len(docs) / (time.perf_counter() - t)
    assert n >= len(docs)
    assert rate > 1000, f"{rate:.0f} docs/s"  # about 6-10k docs/s on one core; loose for a shared CI box


def test_tokenizer_counter_keeps_chunks_within_the_model_limit() -> None:
    transformers = pytest.importorskip("transformers")
    from workbench.retrieval.embedder import bundled_model_path

    tok = transformers.AutoTokenizer.from_pretrained(str(bundled_model_path()))
    counter = TokenizerCounter(tok)
    docs = list(read_beir_jsonl(FIX / "scifact_sample.jsonl"))
    texts = [d.title for d in docs]
    assert counter.many(texts) == [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    for doc in docs:
        for c in chunk_document(doc, max_tokens=60, overlap=15, count_tokens=counter):
            assert len(tok(c.text, add_special_tokens=False)["input_ids"]) <= 60


class _SlowTokenizer:
    """A tokenizer without a Rust backend: one id per whitespace word."""

    def __call__(self, text: str | list[str], add_special_tokens: bool = True) -> dict[str, list]:
        if isinstance(text, list):
            return {"input_ids": [t.split() for t in text]}
        return {"input_ids": text.split()}


def test_tokenizer_counter_without_fast_backend() -> None:
    counter = TokenizerCounter(_SlowTokenizer())
    assert counter("a b c") == 3 and counter.many(["a", "b c"]) == [1, 2] and counter.many([]) == []
    chunks = chunk_document(
        _doc("One two three. Four five six. Seven."), max_tokens=6, overlap=0, count_tokens=counter
    )
    assert [c.text for c in chunks] == ["One two three. Four five six.", "Seven."]
