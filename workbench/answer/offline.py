"""Offline, evidence-only answers: the most relevant source sentences, each cited.

No language model is involved. Candidate sentences come from the numbered context items
(passage sentences, patient facts). Each gets a relevance score::

    relevance = 0.6 * cosine(question, sentence) + 0.25 * recall(question words in sentence)
                + 0.3 * relevance of its item (retrieval rank, fact priority)

Sentences are then picked by maximal marginal relevance (lambda 0.7) so near-duplicates
(cosine above 0.85 to a picked sentence) are skipped. The document of the most relevant
passage leads: its sentences qualify down to 75 % of the best relevance, sentences of other
documents only from 95 % and patient facts from 90 %, so weakly related studies are not
stitched in (weights and floors chosen on PubMedQA development questions against the shipped
index, see docs/answers.md). The picked sentences are
printed grouped by source in context order, each ending with its citation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from workbench.answer.citations import Encoder, attach_citations
from workbench.answer.context import ContextItem
from workbench.answer.text import content_words, split_sentences, token_recall

COS_WEIGHT = 0.6
LEX_WEIGHT = 0.25
ITEM_WEIGHT = 0.3
MMR_LAMBDA = 0.7
REDUNDANT_COSINE = 0.85
#: Stop once a sentence's relevance drops below this share of the best one.
RELATIVE_FLOOR = 0.75
#: Passages of other documents than the leading one must reach this share of the best relevance.
SECONDARY_FLOOR = 0.95
#: Patient facts (never the leading source of a literature answer) must reach this share.
RECORD_FLOOR = 0.9
MIN_CONTENT_WORDS = 4


@dataclass(slots=True)
class Candidate:
    """One sentence that could be quoted, with where it came from."""

    text: str
    item: int
    position: int
    relevance: float = 0.0


def candidates(items: Sequence[ContextItem], *, max_per_item: int = 30) -> list[Candidate]:
    """Quotable sentences of every item (facts whole; passages split into sentences)."""
    out: list[Candidate] = []
    for it in items:
        if it.kind == "record":
            out.append(Candidate(it.text, it.number, 0))
            continue
        for pos, sent in enumerate(split_sentences(it.text)[:max_per_item]):
            sent = re.sub(r"\s+", " ", sent).strip()
            # Headings and fragments read badly and say little.
            if len(content_words(sent)) < MIN_CONTENT_WORDS or sent.isupper():
                continue
            out.append(Candidate(sent, it.number, pos))
    return out


def _item_prior(items: Sequence[ContextItem]) -> dict[int, float]:
    # Item relevances come on different scales (fused retrieval scores, fact priorities);
    # rank them within the context instead so the prior is comparable.
    ranked = sorted(items, key=lambda it: -it.relevance)
    n = max(len(ranked), 1)
    return {it.number: 1.0 - i / n for i, it in enumerate(ranked)}


def select_sentences(
    question: str,
    items: Sequence[ContextItem],
    encoder: Encoder | None,
    *,
    max_sentences: int = 5,
    relative_floor: float = RELATIVE_FLOOR,
    secondary_floor: float = SECONDARY_FLOOR,
    record_floor: float = RECORD_FLOOR,
    lead: Literal["item", "sentence"] = "item",
) -> list[Candidate]:
    """Pick up to ``max_sentences`` relevant, non-redundant sentences (MMR).

    ``lead="item"``: the most relevant context item's document leads (retrieval put the right
    document first far more often than the single best-matching sentence came from it);
    ``lead="sentence"``: the document holding the best sentence leads.
    """
    cands = candidates(items)
    if not cands:
        return []
    prior = _item_prior(items)
    if encoder is not None:
        vecs = encoder.encode([question, *[c.text for c in cands]])
        qv, sv = vecs[0], vecs[1:]
        cos = sv @ qv
    else:
        sv = None
        cos = np.zeros(len(cands), dtype=np.float32)
    for c, cs in zip(cands, cos):
        c.relevance = (
            COS_WEIGHT * max(float(cs), 0.0)
            + LEX_WEIGHT * token_recall(question, c.text)
            + ITEM_WEIGHT * prior.get(c.item, 0.0)
        )
    best_i = max(range(len(cands)), key=lambda i: cands[i].relevance)
    best = cands[best_i].relevance
    by_number = {it.number: it for it in items}

    def source_of(n: int) -> str:
        it = by_number.get(n)
        if it is None or it.kind == "record" or not it.doc_id:
            return f"#{n}"
        return f"{it.corpus}:{it.doc_id}"

    passages = [it for it in items if it.kind != "record"]
    if lead == "item" and passages:
        primary = source_of(max(passages, key=lambda it: it.relevance).number)
    else:
        primary = source_of(cands[best_i].item)

    def floor(c: Candidate) -> float:
        if source_of(c.item) == primary:
            return relative_floor
        it = by_number.get(c.item)
        return record_floor if it is not None and it.kind == "record" else secondary_floor

    # The source holding the best sentence leads; another source joins only with a sentence
    # nearly as relevant as the best, so unrelated studies are not stitched together.
    pool = [i for i, c in enumerate(cands) if c.relevance >= floor(c) * best]
    chosen: list[int] = []
    while pool and len(chosen) < max_sentences:

        def mmr(i: int) -> float:
            if sv is None or not chosen:
                return cands[i].relevance
            return MMR_LAMBDA * cands[i].relevance - (1 - MMR_LAMBDA) * float(max(sv[chosen] @ sv[i]))

        i = max(pool, key=mmr)
        pool.remove(i)
        if sv is not None and chosen and float(max(sv[chosen] @ sv[i])) > REDUNDANT_COSINE:
            continue
        if any(cands[i].text == cands[j].text for j in chosen):
            continue
        chosen.append(i)
    picked = [cands[i] for i in chosen]
    order = {it.number: k for k, it in enumerate(items)}
    picked.sort(key=lambda c: (order.get(c.item, 0), c.position))
    return picked


def extractive_answer(
    question: str,
    items: Sequence[ContextItem],
    encoder: Encoder | None,
    *,
    max_sentences: int = 5,
) -> str:
    """The offline answer text: selected sentences, each with its ``[n]`` citation."""
    picked = select_sentences(question, items, encoder, max_sentences=max_sentences)
    return " ".join(attach_citations(_terminate(c.text), [c.item]) for c in picked)


def _terminate(sentence: str) -> str:
    s = sentence.strip()
    return s if s.endswith((".", "!", "?")) else s + "."
